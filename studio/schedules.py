"""Every periodic task of the studio, in one place (run by `studiolo beat`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

# A dead worker's job is handed over at the first pass after its lease ran out: at most
# every 15 s, and at least twice per lease (tests shorten the lease to seconds).
RECONCILE_EVERY = min(15.0, settings.JOB_LEASE_SECONDS / 2)

# Every task here runs on the control-plane worker (queues `default` and `endpoints`), never
# behind a running job (studio/cli/server.py).
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Lets `/readyz`-style checks and `studiolo doctor` tell that a worker is consuming.
    "worker-heartbeat": {"task": "studio.heartbeat", "schedule": 10.0, "options": {"expires": 10}},
    # No job stuck InProgress, no container left behind, no submitted job left undispatched
    # (jobs/reconcile.py).
    "jobs-reconcile": {
        "task": "jobs.reconcile",
        "schedule": RECONCILE_EVERY,
        "options": {"expires": RECONCILE_EVERY},
    },
    # Every endpoint instance alive and answering /ping; failing ones replaced.
    "endpoints-check": {
        "task": "endpoints.check",
        "schedule": float(settings.ENDPOINT_HEALTH_CHECK_SECONDS),
        "options": {"expires": float(settings.ENDPOINT_HEALTH_CHECK_SECONDS), "queue": "endpoints"},
    },
    # The try-it console's expired tokens are deleted rather than left to pile up in
    # Settings (they are hidden from the lists as soon as they expire).
    "accounts-purge-try-tokens": {
        "task": "accounts.purge_try_tokens",
        "schedule": 600.0,
        "options": {"expires": 600},
    },
    # Failed-sign-in counts nobody added to for a day (studio/accounts/login.py).
    "accounts-purge-login-throttles": {
        "task": "accounts.purge_login_throttles",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    # Deleted runs and experiments past TRACKING_RETENTION_DAYS are purged for good (their
    # metric points, params, tags and artifacts), a bounded number per pass.
    "experiments-purge-expired": {
        "task": "experiments.purge_expired",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    # The orchestrator's backstop: a pass over every active pipeline execution, for the
    # job-ended hooks and task messages that were lost (pipelines/orchestrator.py).
    "pipelines-advance-active": {
        "task": "pipelines.advance_active",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    # Webhook deliveries whose task message was lost (Redis restarted) are sent again.
    "webhooks-resend-due": {
        "task": "webhooks.resend_due",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
}
