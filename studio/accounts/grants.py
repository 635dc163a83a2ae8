"""What let a websocket in, whether it still does, and telling open sockets when it stops.

A websocket is authenticated once, at its handshake, by an API token (a bearer header) or by
the browser's session. Its *grant* remembers which (the token and its expiry, or the session)
and whose. The grant ends when the token is revoked or expires, when the session is logged
out (or flushed, or expires, or its user's password changes), or when the user is
deactivated; what the socket may see changes when the user leaves a team or changes role.

Open sockets learn of it in two ways, neither of them an ORM call per event:

- after the change commits, its service sends `auth.revoked` (close now) or `auth.recheck`
  (read the grant and your rights again) to the channel group of the token, the session or
  the user; every socket joins its three at its handshake (studio.accounts.consumers);
- every socket reads its grant again every RECHECK_SECONDS, and at its token's expiry: the
  backstop for an expiry that nobody announces, and for a message lost while Redis was down.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from studio.accounts.models import ApiToken
from studio.events import group_send

# How often an open socket reads its grant again when told nothing. Under the 5 s within
# which the data plane's caches honour a revocation, with room for the check itself.
RECHECK_SECONDS = 4.0
# Close codes: the socket's credentials ended (as HTTP 401); its object went out of sight.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@dataclass(frozen=True)
class SocketGrant:
    user_id: int
    token_id: int | None = None
    token_expires_at: datetime | None = None
    session_key: str | None = None

    @property
    def groups(self) -> list[str]:
        """The channel groups whose revocations reach this socket."""
        groups = [user_group(self.user_id)]
        if self.token_id is not None:
            groups.append(token_group(self.token_id))
        if self.session_key is not None:
            groups.append(session_group(self.session_key))
        return groups


def user_group(user_id: int) -> str:
    return f"auth.user.{user_id}"


def token_group(token_id: int) -> str:
    return f"auth.token.{token_id}"


def session_group(session_key: str) -> str:
    # A digest: the session key is the cookie's secret and stays out of Redis's key names.
    return f"auth.session.{hashlib.sha256(session_key.encode()).hexdigest()[:40]}"


def grant_from_scope(scope: dict[str, Any]) -> SocketGrant | None:
    """The grant of a socket whose handshake authenticated (studio.accounts.websocket), or
    None for an anonymous one."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None
    token = scope.get("auth_token")
    if token is not None:
        return SocketGrant(
            user_id=user.pk, token_id=token["id"], token_expires_at=token["expires_at"]
        )
    session = scope.get("session")
    session_key = session.session_key if session is not None else None
    if not session_key:
        return None
    return SocketGrant(user_id=user.pk, session_key=session_key)


def grant_ended(grant: SocketGrant) -> str | None:
    """Why the grant no longer holds ("token revoked", ...), or None while it does."""
    if grant.token_id is not None:
        row = (
            ApiToken.objects.filter(pk=grant.token_id)
            .values("revoked_at", "expires_at", "user__is_active")
            .first()
        )
        if row is None or row["revoked_at"] is not None:
            return "token revoked"
        if row["expires_at"] is not None and row["expires_at"] <= timezone.now():
            return "token expired"
        return None if row["user__is_active"] else "user deactivated"
    if grant.session_key is None:
        return "no credentials"
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(grant.session_key).load()  # {} once flushed or expired
    if session.get(SESSION_KEY) != str(grant.user_id):
        return "signed out"
    user = User.objects.filter(pk=grant.user_id, is_active=True).first()
    if user is None:
        return "user deactivated"
    # What django.contrib.auth.get_user checks on every request: a password change ends
    # the sessions made before it.
    if not constant_time_compare(session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return "password changed"
    return None


# --- telling open sockets --------------------------------------------------------------


def sockets_revoke(group: str, *, reason: str) -> None:
    """Close the group's sockets once the current transaction commits."""
    message = {"type": "auth.revoked", "reason": reason}
    transaction.on_commit(lambda: group_send(group, message, what="auth.revoked"))


def sockets_recheck(group: str) -> None:
    """Have the group's sockets read their grant and rights again, after commit."""
    message = {"type": "auth.recheck"}
    transaction.on_commit(lambda: group_send(group, message, what="auth.recheck"))


def session_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Django's `user_logged_out` signal (connected in apps.py): the one place every logout
    passes. Sent at once: the session is flushed right after this signal, in the same
    request, and the sockets need no second look to know it is gone."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        group_send(
            session_group(session_key),
            {"type": "auth.revoked", "reason": "signed out"},
            what="auth.revoked",
        )
