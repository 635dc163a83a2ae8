"""Model package groups, versioned model packages, and the team's approval decisions.

A package's artifact and lineage are written once, at registration, and never change; only
its approval status moves, through `registry.services.approval`, one locked transition at a
time, each with who, when and why. The artifact is pinned by content (sha256 and size, read
from the store at registration): what was approved is what gets served, or nothing is.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.transitions import TransitionLog


class ApprovalStatus(models.TextChoices):
    # SageMaker's ModelApprovalStatus values.
    PENDING = "PendingManualApproval", "Pending manual approval"  # waiting for reviewers
    APPROVED = "Approved", "Approved"  # may be deployed
    REJECTED = "Rejected", "Rejected"  # must not be deployed


# Which status a decision may lead to from each status.
ALLOWED_APPROVALS: dict[str, frozenset[str]] = {
    ApprovalStatus.PENDING: frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REJECTED}),
    ApprovalStatus.APPROVED: frozenset({ApprovalStatus.REJECTED}),
    ApprovalStatus.REJECTED: frozenset({ApprovalStatus.APPROVED}),
}


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class ModelPackageGroup(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="model_groups")
    name = models.CharField(max_length=63)
    description = models.TextField(blank=True)
    # Distinct approvals needed before a package becomes Approved (the N-approvals rule).
    approvals_required = models.PositiveSmallIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], name="model_group_unique_name_per_team"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelPackage(models.Model):
    group = models.ForeignKey(ModelPackageGroup, on_delete=models.PROTECT, related_name="packages")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # What is deployed: written at registration, never changed.
    artifact_uri = models.CharField(max_length=1024)
    # The artifact's content when it was registered; whatever serves the package checks it.
    # Blank only for a package registered before pinning whose artifact was gone at the
    # upgrade (migration 0003): such a package is never deployed.
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_size = models.PositiveBigIntegerField(null=True, blank=True)
    image = models.CharField(max_length=512)
    framework = models.CharField(max_length=32, blank=True)
    entry_point = models.CharField(max_length=256, blank=True)
    content_types = models.JSONField(default=list, blank=True)
    response_types = models.JSONField(default=list, blank=True)

    # Lineage: where it came from, written at registration, never changed.
    external = models.BooleanField(default=False)  # registered from an artifact, not a job
    source_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="model_packages"
    )
    source_run = models.ForeignKey(
        "experiments.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    input_data = models.JSONField(default=list, blank=True)  # [{name, uri}] of the training job
    training_image = models.CharField(max_length=512, blank=True)
    image_digest = models.CharField(max_length=128, blank=True)
    metrics = models.JSONField(default=dict, blank=True)  # {name: value} at registration

    # Approval (written only by registry.services.approval).
    approval_status = models.CharField(
        max_length=24, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    # Incremented at every status change: votes count only within the current round.
    approval_round = models.PositiveIntegerField(default=1)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "version"], name="model_package_unique_version"
            ),
        ]
        indexes = [
            models.Index(fields=["approval_status"], name="model_package_status"),
            # A user's upload asks whether its key is any package's artifact.
            models.Index(fields=["artifact_uri"], name="model_package_artifact"),
        ]
        ordering = ["group", "-version"]

    def __str__(self) -> str:
        return f"{self.group.name}/{self.version}"


class ApprovalVote(models.Model):
    """One reviewer's decision on one package in one round, with the reason."""

    package = models.ForeignKey(ModelPackage, on_delete=models.CASCADE, related_name="votes")
    round = models.PositiveIntegerField()
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["package", "round", "actor"], name="vote_once_per_round"
            ),
        ]
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.decision} by {self.actor_id}"


class ApprovalTransition(TransitionLog):
    """Append-only history of a package's approval status; `message` is the decider's
    comment (the API shows it as `comment` too)."""

    package = models.ForeignKey(ModelPackage, on_delete=models.CASCADE, related_name="transitions")

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}"
