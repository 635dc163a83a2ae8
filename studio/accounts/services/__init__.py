"""Every change to users, teams, memberships and tokens, with its audit event, and the one
permission check.

One module per aggregate: `permissions` (who may do what in a team), `members` (users,
teams, memberships), `tokens` (API tokens). The names below are what other apps use.
"""

from __future__ import annotations

from studio.accounts.services.members import (
    Enrolment,
    initial_admin_ensure,
    membership_add,
    membership_change_refusal,
    membership_remove,
    membership_role_change,
    membership_set,
    team_create,
    team_get_or_create,
    team_set_self_approval,
    user_create,
    user_enrol,
    user_password_set,
    user_set_active,
)
from studio.accounts.services.permissions import (
    Actor,
    membership_role,
    permission_refusal,
    require_permission,
)
from studio.accounts.services.tokens import (
    LAST_USED_PRECISION,
    TOKEN_PREFIX,
    TRY_IT_PURGE_BATCH,
    TRY_IT_TOKEN_MINUTES,
    TRY_IT_TOKEN_NAME,
    token_authenticate,
    token_create,
    token_digest,
    token_lookup,
    token_revoke,
    try_token_create,
    try_tokens_purge,
)

__all__ = [
    "Actor",
    "Enrolment",
    "LAST_USED_PRECISION",
    "TOKEN_PREFIX",
    "TRY_IT_PURGE_BATCH",
    "TRY_IT_TOKEN_MINUTES",
    "TRY_IT_TOKEN_NAME",
    "initial_admin_ensure",
    "membership_add",
    "membership_change_refusal",
    "membership_remove",
    "membership_role",
    "membership_role_change",
    "membership_set",
    "permission_refusal",
    "require_permission",
    "team_create",
    "team_get_or_create",
    "team_set_self_approval",
    "token_authenticate",
    "token_create",
    "token_digest",
    "token_lookup",
    "token_revoke",
    "try_token_create",
    "try_tokens_purge",
    "user_create",
    "user_enrol",
    "user_password_set",
    "user_set_active",
]
