"""Every change to users, teams, memberships and tokens, with its audit event."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from studio.accounts.grants import sockets_recheck, sockets_revoke, token_group, user_group
from studio.accounts.models import ApiToken, Membership, Team, TokenPurpose
from studio.accounts.roles import Action, Role, role_allows
from studio.accounts.selectors import dead_try_tokens_q, noted_member_role, user_by_username
from studio.audit.services import audit_record
from studio.errors import Conflict, NotFound, PermissionDenied, StudioloError, ValidationError

Actor = AbstractBaseUser | AnonymousUser | None

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
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")


def token_digest(secret: str) -> str:
    """What is stored of a token secret (and what caches of tokens may key on)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- permissions -----------------------------------------------------------------------


def membership_role(*, user: Actor, team: Team) -> str | None:
    """The user's role in the team (None: not a member), read from the database; or, when
    this team instance was loaded together with the user's membership row in this request
    (`studio.accounts.selectors.note_member_role`), that row's role."""
    if user is None or not user.is_authenticated:
        return None
    known, role = noted_member_role(team, user.pk)
    if known:
        return role
    return (
        Membership.objects.filter(team=team, user_id=user.pk).values_list("role", flat=True).first()
    )


def require_permission(*, user: Actor, team: Team, action: Action) -> str:
    """Return the user's role in the team, or raise `permission_refusal`'s answer."""
    role = membership_role(user=user, team=team)
    refusal = _role_refusal(role, team=team, action=action)
    if refusal is not None:
        raise refusal
    return cast(str, role)  # a role that allows the action is a role


def permission_refusal(*, user: Actor, team: Team, action: Action) -> StudioloError | None:
    """Why `user` may not do `action` in `team`, or None when they may. The one statement of
    the rule: `require_permission` raises the answer, the UI asks it which buttons to offer
    (and so do the other apps' `*_refusal` checks)."""
    return _role_refusal(membership_role(user=user, team=team), team=team, action=action)


def _role_refusal(role: str | None, *, team: Team, action: Action) -> StudioloError | None:
    # Non-members get NotFound rather than PermissionDenied: a user must not learn which
    # names exist in another team.
    if role is None:
        return NotFound(f"team {team.slug!r} not found")
    if not role_allows(role, action):
        return PermissionDenied(
            f"your role {role!r} in team {team.slug!r} does not allow {action.value}"
        )
    return None


# --- users and teams -------------------------------------------------------------------


def user_create(
    *, username: str, password: str | None = None, email: str = "", actor: Actor = None
) -> tuple[User, str]:
    """Create a user; returns the user and its password (generated when not given)."""
    if not _USERNAME.match(username):
        raise ValidationError("username: 1-150 letters, digits and @.+-_ only", field="username")
    password = password or secrets.token_urlsafe(12)
    model = get_user_model()
    with transaction.atomic():
        if model.objects.filter(username=username).exists():
            raise Conflict(f"user {username!r} already exists", field="username")
        user = model.objects.create_user(username=username, email=email, password=password)
        audit_record(actor=actor, action="user.created", target=user, object_repr=username)
    return user, password


def team_create(*, slug: str, name: str = "", actor: Actor = None) -> Team:
    if not _SLUG.match(slug):
        raise ValidationError(
            "team: lower-case letters, digits and hyphens, 1-64 characters", field="team"
        )
    try:
        with transaction.atomic():
            team = Team.objects.create(slug=slug, name=name or slug)
            audit_record(actor=actor, action="team.created", target=team, team=team)
    except IntegrityError as exc:
        raise Conflict(f"team {slug!r} already exists", field="team") from exc
    return team


def team_get_or_create(*, slug: str, actor: Actor = None) -> tuple[Team, bool]:
    team = Team.objects.filter(slug=slug).first()
    if team is not None:
        return team, False
    return team_create(slug=slug, actor=actor), True


def membership_set(*, team: Team, user: User, role: str, actor: Actor = None) -> Membership:
    """Add a user to a team or change their role."""
    if role not in Role.values:
        raise ValidationError(f"role: expected one of {', '.join(Role.values)}", field="role")
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            team=team, user=user, defaults={"role": role}
        )
        old_role = None if created else membership.role
        if old_role == Role.ADMIN and role != Role.ADMIN:
            _keep_an_admin(team, leaving=user)
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
        if created or old_role != role:
            # Open websockets of the user follow the team's events from now on, or (a role
            # change) read again what they may see.
            sockets_recheck(user_group(user.pk))
            audit_record(
                actor=actor,
                action="membership.added" if created else "membership.role_changed",
                target=membership,
                object_repr=f"{user.get_username()} in {team.slug}",
                team=team,
                details={"user": user.get_username(), "role": role, "previous_role": old_role},
            )
    return membership


def membership_change_refusal(*, team: Team, actor: Actor) -> StudioloError | None:
    """Why `actor` may not change who is in `team` or their roles, or None when they may
    (a team admin). The one statement of the rule: `membership_add` and
    `membership_role_change` raise the answer, the UI asks it whether to offer its forms."""
    return permission_refusal(user=actor, team=team, action=Action.MANAGE_TEAM)


def membership_add(*, team: Team, username: str, role: str, actor: Actor) -> Membership:
    """A team admin adds an existing, active user to the team with `role`. The permission is
    checked first: someone who may not manage the team must not learn which usernames
    exist."""
    refusal = membership_change_refusal(team=team, actor=actor)
    if refusal is not None:
        raise refusal
    username = username.strip()
    user = user_by_username(username)
    if user is None:
        raise NotFound(f"no user named {username!r}", field="username")
    with transaction.atomic():
        if Membership.objects.filter(team=team, user=user).exists():
            raise Conflict(
                f"{username} is already a member; change their role in the list",
                field="username",
            )
        return membership_set(team=team, user=user, role=role, actor=actor)


def membership_role_change(
    *, team: Team, membership_id: int, role: str, actor: Actor
) -> Membership:
    """A team admin gives a member of the team another role (a team keeps one admin)."""
    refusal = membership_change_refusal(team=team, actor=actor)
    if refusal is not None:
        raise refusal
    target = Membership.objects.filter(team=team, pk=membership_id).select_related("user").first()
    if target is None:
        raise NotFound("that member is not in this team", field="membership")
    return membership_set(team=team, user=target.user, role=role, actor=actor)


@dataclass(frozen=True)
class Enrolment:
    """What `user_enrol` did."""

    membership: Membership
    user_created: bool
    team_created: bool
    password: str | None  # the generated password of a new user, to show once; else None


def user_enrol(
    *,
    username: str,
    team_slug: str,
    role: str,
    password: str | None = None,
    email: str = "",
    actor: Actor = None,
) -> Enrolment:
    """Make `username` a member of team `team_slug` with `role`, creating the user (with
    `password` after Django's validators, or a generated one) and the team when they do not
    exist yet. All or nothing: a bad role or team name leaves no half-made user or team. An
    existing user's password and e-mail stay as they are. Each change is audited by the
    service that makes it (`user_create`, `team_create`, `membership_set`)."""
    with transaction.atomic():
        user = get_user_model().objects.filter(username=username).first()
        created = user is None
        generated = None
        if user is None:
            if password is not None:
                _password_validate(password, None)
            user, made = user_create(username=username, password=password, email=email, actor=actor)
            generated = made if password is None else None
        team, team_created = team_get_or_create(slug=team_slug, actor=actor)
        membership = membership_set(team=team, user=user, role=role, actor=actor)
    return Enrolment(
        membership=membership,
        user_created=created,
        team_created=team_created,
        password=generated,
    )


def _password_validate(password: str, user: User | None) -> None:
    """Django's validators (length, common, similar to the name), as a ValidationError."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError("password: " + " ".join(exc.messages), field="password") from exc


def user_password_set(*, user: User, password: str, actor: Actor = None) -> None:
    """Set a password after Django's validators (length, common, similar to the name)."""
    _password_validate(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        # The user's sessions made before now end (Django's session hash); so do their sockets.
        sockets_recheck(user_group(user.pk))
        audit_record(
            actor=actor, action="user.password_set", target=user, object_repr=user.get_username()
        )


def membership_remove(*, team: Team, user: User, actor: Actor = None) -> None:
    with transaction.atomic():
        if Membership.objects.filter(team=team, user=user, role=Role.ADMIN).exists():
            _keep_an_admin(team, leaving=user)
        deleted, _ = Membership.objects.filter(team=team, user=user).delete()
        if not deleted:
            raise NotFound(f"{user.get_username()} is not a member of {team.slug}")
        sockets_recheck(user_group(user.pk))  # their open websockets stop hearing the team
        audit_record(
            actor=actor,
            action="membership.removed",
            object_type="accounts.membership",
            object_repr=f"{user.get_username()} in {team.slug}",
            team=team,
            details={"user": user.get_username()},
        )


def user_set_active(*, user: User, active: bool, actor: Actor = None) -> User:
    """Deactivate a user (they can no longer sign in, their tokens stop working, their open
    websockets close) or activate them again. Audited; nothing is deleted."""
    with transaction.atomic():
        updated = (
            get_user_model()
            .objects.filter(pk=user.pk)
            .exclude(is_active=active)
            .update(is_active=active)
        )
        user.refresh_from_db(fields=["is_active"])
        if updated:
            if not active:
                sockets_revoke(user_group(user.pk), reason="user deactivated")
            audit_record(
                actor=actor,
                action="user.activated" if active else "user.deactivated",
                target=user,
                object_repr=user.get_username(),
                details={"user": user.get_username()},
            )
    return user


def _keep_an_admin(team: Team, *, leaving: User) -> None:
    """A team always keeps at least one admin, or nobody could manage it any more."""
    others = (
        Membership.objects.select_for_update()
        .filter(team=team, role=Role.ADMIN)
        .exclude(user=leaving)
    )
    if not others.exists():
        raise ValidationError(
            f"role: {leaving.get_username()} is the last admin of {team.slug}; make someone else admin first",
            field="role",
        )


def initial_admin_ensure() -> str | None:
    """On a fresh install, create `admin` (team `default`, role admin) and return its
    one-time password; return None when any user exists already."""
    model = get_user_model()
    with transaction.atomic():
        if model.objects.exists():
            return None
        user, password = user_create(username="admin")
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
        team, _ = team_get_or_create(slug="default")
        membership_set(team=team, user=user, role=Role.ADMIN)
    return password


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


def team_set_self_approval(*, team: Team, allowed: bool, actor: Actor) -> Team:
    """Relax (or restore) separation of duties for the team's model approvals. Audited:
    who may approve their own models is something a reviewer of the log must see."""
    require_permission(user=actor, team=team, action=Action.MANAGE_TEAM)
    with transaction.atomic():
        updated = (
            Team.objects.filter(pk=team.pk)
            .exclude(allow_self_approval=allowed)
            .update(allow_self_approval=allowed)
        )
        team.refresh_from_db()
        if updated:
            audit_record(
                actor=actor,
                action="team.self_approval_allowed" if allowed else "team.self_approval_forbidden",
                target=team,
                team=team,
                details={"allow_self_approval": allowed},
            )
    return team
