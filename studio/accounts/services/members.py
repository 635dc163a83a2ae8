"""Every change to users, teams and memberships, with its audit event."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from studio.accounts.grants import sockets_recheck, sockets_revoke, user_group
from studio.accounts.models import Membership, Team
from studio.accounts.roles import Action, Role
from studio.accounts.selectors import user_by_username
from studio.accounts.services.permissions import Actor, permission_refusal, require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, NotFound, StudioloError, ValidationError

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")


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
