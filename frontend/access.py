"""Who is asking: the signed-in user of every UI view."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthedRequest(HttpRequest):
    """LoginRequiredMiddleware guarantees a signed-in user on every view below."""

    user: User
