"""Base class for API views."""

from __future__ import annotations

from typing import Any

from rest_framework.views import APIView


class StudioAPIView(APIView):
    """API views authenticate with DRF (bearer token or session), not with Django's
    LoginRequiredMiddleware, which cannot see bearer tokens and would redirect to a
    login page instead of answering 401."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        view.login_required = False  # type: ignore[attr-defined]
        return view
