"""A time limit on the queries of a block of code, enforced by the database itself.

A costly search must not hold a web thread and its database connection for minutes: past
the limit the database stops the statement, the connection stays usable, and the caller
gets `Unavailable` (503) saying what was stopped and why.

- PostgreSQL: `statement_timeout`, set with `set_config(..., true)` for the transaction the
  block runs in (its own, or a savepoint of the caller's, after which the caller's value
  is put back). A cancelled statement rolls its transaction or savepoint back.
- SQLite: a progress handler that the engine calls every 1,000 virtual-machine steps; once
  the deadline has passed it answers "stop" and SQLite interrupts the statement. (Python
  functions a statement calls, like `studiolo_like`, are not interrupted mid-call, which is
  why they must be cheap per row: see experiments/like.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction

from studio.errors import Unavailable

SQLITE_PROGRESS_STEPS = 1000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


def _stopped(what: str, seconds: float) -> Unavailable:
    return Unavailable(
        f"the {what} took longer than {seconds:g} s and was stopped; "
        "narrow the filter or search fewer experiments"
    )


@contextmanager
def time_limited_queries(seconds: float, *, what: str) -> Iterator[None]:
    """Queries run in the block are stopped once they have taken `seconds` (on PostgreSQL
    each statement; on SQLite the block's statements together)."""
    if connection.vendor == "postgresql":
        with _postgresql_limit(seconds, what):
            yield
    elif connection.vendor == "sqlite":
        with _sqlite_limit(seconds, what):
            yield
    else:
        yield


@contextmanager
def _postgresql_limit(seconds: float, what: str) -> Iterator[None]:
    nested = connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            previous = None
            if nested:
                cursor.execute("SELECT current_setting('statement_timeout')")
                previous = cursor.fetchone()[0]
            milliseconds = max(1, round(seconds * 1000))
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(milliseconds)])
        try:
            yield
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
                raise _stopped(what, seconds) from exc  # rolls the transaction back
            raise
        if previous is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])


@contextmanager
def _sqlite_limit(seconds: float, what: str) -> Iterator[None]:
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + seconds
    raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_PROGRESS_STEPS)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc) and time.monotonic() > deadline:
            raise _stopped(what, seconds) from exc
        raise
    finally:
        raw.set_progress_handler(None, 0)
