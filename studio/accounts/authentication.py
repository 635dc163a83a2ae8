"""`Authorization: Bearer <token>` for the REST API (and the MLflow client's token)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from studio.accounts.services import token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: expected 'Bearer <token>'")
        user = token_authenticate(header[1].decode("latin-1"))
        if user is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="studiolo"'
