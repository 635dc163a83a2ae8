"""Idempotent submission: the same `Idempotency-Key` with the same request returns the job
the first request made, a second job is never made (also when the two race); the same key
with another request is refused (422, as the IETF Idempotency-Key draft says). Keys belong to
the user who sent them and are kept with the job they made (`Job.idempotency_key`,
`Job.request_digest`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from jobs.models import Job
from studio.errors import StudioloError, ValidationError

Actor = AbstractBaseUser | AnonymousUser | None


@dataclass(frozen=True)
class Idempotency:
    """A submitter's idempotency key and the digest of the request it came with."""

    key: str
    digest: str


class IdempotencyKeyReused(StudioloError):
    """The key was used before with another request (the IETF Idempotency-Key draft's 422)."""

    code = "idempotency_key_reused"
    status = 422


def job_submit_once(
    *, actor: Actor, idempotency: Idempotency | None, create: Callable[[], Job]
) -> Job:
    """`create()` the job, unless `idempotency`'s key made one already: then that job (same
    request) or IdempotencyKeyReused (another request). Also when the two requests race: the
    loser's insert fails on the key (or the name) and finds the winner's job."""
    if idempotency is None or not isinstance(actor, User):
        return create()
    earlier = _job_for_key(actor, idempotency)
    if earlier is not None:
        return earlier
    try:
        return create()
    except ValidationError:
        earlier = _job_for_key(actor, idempotency)
        if earlier is not None:
            return earlier
        raise


def _job_for_key(actor: User, idempotency: Idempotency) -> Job | None:
    job = (
        Job.objects.select_related("team", "created_by")
        .filter(created_by=actor, idempotency_key=idempotency.key)
        .first()
    )
    if job is None:
        return None
    if job.request_digest != idempotency.digest:
        raise IdempotencyKeyReused(
            f"Idempotency-Key: {idempotency.key!r} was used for another request (job "
            f"{job.name}); use a new key for a new job",
            field="Idempotency-Key",
        )
    return job
