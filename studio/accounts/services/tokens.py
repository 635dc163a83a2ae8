"""API tokens: creating, revoking, authenticating, and the try-it console's short-lived
ones, with their audit events."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from studio.accounts.grants import sockets_revoke, token_group
from studio.accounts.models import ApiToken, TokenPurpose
from studio.accounts.selectors import dead_try_tokens_q
from studio.accounts.services.permissions import Actor
from studio.audit.services import audit_record
from studio.errors import ValidationError

TOKEN_PREFIX = "stl_"  # noqa: S105 - a public marker that makes leaked tokens easy to scan for
# Writing last_used_at on every request would turn each API call into a write;
# once a minute is precise enough to tell a live token from a forgotten one.
LAST_USED_PRECISION = timedelta(minutes=1)
# The "try it" console's token: long enough for a session of trying, short enough that a
# token left in a closed tab is soon worthless. Named so the user recognises it in Settings.
TRY_IT_TOKEN_MINUTES = 15
TRY_IT_TOKEN_NAME = "try-it console"  # noqa: S105 - a label, not a secret
# Dead try-it tokens deleted per purge run; the beat runs it again every few minutes.
TRY_IT_PURGE_BATCH = 1000


def token_digest(secret: str) -> str:
    """What is stored of a token secret (and what caches of tokens may key on)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- tokens ----------------------------------------------------------------------------


def token_create(
    *,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    actor: Actor = None,
    purpose: TokenPurpose = TokenPurpose.API,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("name: 1-100 characters", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("expires_at: must be in the future", field="expires_at")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            digest=token_digest(secret),
            expires_at=expires_at,
            purpose=purpose,
        )
        audit_record(
            actor=actor,
            action="token.created",
            target=token,
            details={"user": user.get_username(), "name": name, "purpose": purpose.value},
        )
    return token, secret


def try_token_create(*, user: User) -> tuple[ApiToken, str]:
    """A token of `user` for an endpoint page's "try it" console, expiring in
    TRY_IT_TOKEN_MINUTES; the user's dead try-it tokens are purged first.

    A still-valid try-it token cannot be handed out again: only its digest is stored. The
    page keeps the secret in memory and reuses it, so a new one is minted per page load.
    """
    try_tokens_purge(user=user)
    return token_create(
        user=user,
        name=TRY_IT_TOKEN_NAME,
        expires_at=timezone.now() + timedelta(minutes=TRY_IT_TOKEN_MINUTES),
        actor=user,
        purpose=TokenPurpose.TRY_IT,
    )


def try_tokens_purge(*, user: User | None = None) -> int:
    """Delete dead try-it tokens (of `user`, or everyone's), at most TRY_IT_PURGE_BATCH;
    returns how many. Housekeeping by the studio: audited as `token.purged` by `system`."""
    dead = ApiToken.objects.filter(dead_try_tokens_q(timezone.now()))
    if user is not None:
        dead = dead.filter(user=user)
    purged = 0
    for token in dead.select_related("user").order_by("pk")[:TRY_IT_PURGE_BATCH]:
        with transaction.atomic():
            # The row count says whether this purge deleted it: the beat's purge and one on
            # minting can race, and each token gets one event.
            deleted, _ = ApiToken.objects.filter(pk=token.pk).delete()
            if deleted:
                audit_record(
                    actor=None,
                    action="token.purged",
                    target=token,
                    details={
                        "user": token.user.get_username(),
                        "name": token.name,
                        "purpose": token.purpose,
                        "reason": "revoked" if token.revoked_at is not None else "expired",
                    },
                )
                purged += 1
    return purged


def token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    with transaction.atomic():
        # Conditional update: two revokes racing record one event, not two.
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db()
        if updated:
            sockets_revoke(token_group(token.pk), reason="token revoked")
            audit_record(
                actor=actor,
                action="token.revoked",
                target=token,
                details={"user": token.user.get_username(), "name": token.name},
            )
    return token


def token_authenticate(secret: str) -> User | None:
    """The user behind a bearer secret, or None for an unknown, revoked or expired token."""
    token = token_lookup(secret)
    return token.user if token is not None else None


def token_lookup(secret: str) -> ApiToken | None:
    """The valid token of a bearer secret, with its user; None for an unknown, revoked or
    expired token or an inactive user. Notes the token's use (once a minute at most)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(secret)).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
