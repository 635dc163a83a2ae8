"""Users are Django's; teams own every object; tokens authenticate automation."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.accounts.roles import Role


class Team(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    # Separation of duties: by default nobody approves a model package they registered.
    # Changing this is audited (studio.accounts.services.team_set_self_approval).
    allow_self_approval = models.BooleanField(default=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user"),
        ]
        ordering = ["team__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.team_id}:{self.role}"


class TokenPurpose(models.TextChoices):
    # Made by its user (Settings, the API, the CLI); listed for good, expired or revoked too.
    API = "api", "API token"
    # Minted by an endpoint page's "try it" console for the signed-in user: short-lived,
    # hidden once expired or revoked, and deleted then (it can never work again).
    TRY_IT = "try_it", "Try-it console"


class ApiToken(models.Model):
    """A bearer token. Only a SHA-256 digest of the secret is stored.

    The secret has 256 bits of entropy, so a fast hash is enough: there is nothing to
    brute-force, and lookups by digest stay a single indexed query per request.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="Shown in lists to recognise a token.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    purpose = models.CharField(
        max_length=16, choices=TokenPurpose.choices, default=TokenPurpose.API
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class LoginThrottle(models.Model):
    """Failed sign-ins counted under one key (an account, an account on one known browser, or
    a client address) and the lock-out they earned. The rules are in studio/accounts/login.py;
    rows nobody failed under for a day are purged by the beat."""

    # "account:<username>", "device:<device id>:<username>" or "address:<ip or IPv6 /64>".
    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # When a refused attempt under this key was last written to the audit log: at the cap,
    # one per cap period is, so a flood of refusals cannot fill the append-only log.
    refusal_audited_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures}"
