"""How model packages look in the UI: approval colours and labels (the endpoints pages show
them too, and hand them to their scripts)."""

from __future__ import annotations

from registry.models import ApprovalStatus

APPROVAL_COLOURS: dict[str, str] = {
    ApprovalStatus.PENDING: "cyan",
    ApprovalStatus.APPROVED: "green",
    ApprovalStatus.REJECTED: "red",
}
APPROVAL_LABELS: dict[str, str] = {value: str(label) for value, label in ApprovalStatus.choices}


def approval_colour(status: str) -> str:
    return APPROVAL_COLOURS.get(status, "gray")
