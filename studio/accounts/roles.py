"""Team roles and the permission matrix.

Roles are ordered: each includes everything the one before it may do. The matrix below is
the single source of truth; `docs/permissions.md` is generated from it and a test keeps the
two in step.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"  # reads everything the team owns
    SCIENTIST = "scientist", "Scientist"  # runs experiments and jobs, registers and deploys models
    APPROVER = "approver", "Approver"  # also approves or rejects model packages
    ADMIN = "admin", "Admin"  # also manages members, roles, webhooks and team settings


ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.SCIENTIST, Role.APPROVER, Role.ADMIN)


class Action(models.TextChoices):
    VIEW = "team.view", "See the team's experiments, jobs, models, endpoints and audit log"
    TRACK = "experiment.write", "Create experiments and runs, log params, metrics and artifacts"
    SUBMIT_JOB = "job.submit", "Submit training, processing and transform jobs"
    STOP_JOB = "job.stop", "Stop a running job"
    REGISTER_MODEL = "model.register", "Register model package groups and versions"
    APPROVE_MODEL = "model.approve", "Approve or reject a model package"
    DEPLOY = "endpoint.deploy", "Create, update and delete endpoints"
    INVOKE = "endpoint.invoke", "Send requests to the team's endpoints"
    MANAGE_TEAM = "team.manage", "Add members, change roles, configure webhooks and team settings"


# Lowest role allowed to perform each action.
MINIMUM_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.TRACK: Role.SCIENTIST,
    Action.SUBMIT_JOB: Role.SCIENTIST,
    Action.STOP_JOB: Role.SCIENTIST,
    Action.REGISTER_MODEL: Role.SCIENTIST,
    Action.DEPLOY: Role.SCIENTIST,
    Action.INVOKE: Role.SCIENTIST,
    Action.APPROVE_MODEL: Role.APPROVER,
    Action.MANAGE_TEAM: Role.ADMIN,
}


def role_allows(role: str, action: Action) -> bool:
    return ROLE_ORDER.index(Role(role)) >= ROLE_ORDER.index(MINIMUM_ROLE[action])


def permission_matrix_markdown() -> str:
    header = "| action | meaning | " + " | ".join(r.value for r in ROLE_ORDER) + " |"
    rule = "|" + "---|" * (2 + len(ROLE_ORDER))
    rows = [
        f"| `{action.value}` | {action.label} | "
        + " | ".join("yes" if role_allows(role, action) else "no" for role in ROLE_ORDER)
        + " |"
        for action in Action
    ]
    return "\n".join([header, rule, *rows])
