"""What every `studiolo` command shares: the error it raises to stop, and Django set-up."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit, urlunsplit

from studio.config import Config, load_config

# The exit code of a `--wait` that gave up before the object settled (GNU `timeout`'s
# code, so scripts tell "still going" from "failed" (1) and "usage" (2)).
TIMED_OUT = 124


class CliError(Exception):
    """Stop the command: `main` prints `studiolo: <message>` on stderr and exits with `code`."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def positive(raw: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def config_load() -> Config:
    """The instance's configuration (a ConfigError propagates to `main`, which exits 2)."""
    return load_config()


def django_setup() -> None:
    """Load Django with the instance's settings (a test run keeps its own settings module)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()


def migrations_pending() -> int:
    """How many migrations the database still needs; raises CliError when it is unreachable."""
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError as exc:
        raise CliError(f"cannot use the database: {exc}".strip()) from exc


def require_migrated() -> None:
    pending = migrations_pending()
    if pending:
        raise CliError(
            f"the database lacks {pending} migrations: run `studiolo migrate` or `studiolo up` first"
        )


def require_external_redis(config: Config, command: str) -> None:
    """Single-component commands never start Redis: that is `studiolo up`'s job."""
    if config.redis_embedded:
        raise CliError(
            f"REDIS_URL is not set: `studiolo {command}` runs one component and needs a shared "
            "Redis (set REDIS_URL=redis://host:6379/0), or run everything with `studiolo up`",
            code=2,
        )


def url_masked(url: str) -> str:
    """The URL with its password replaced by ***, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
