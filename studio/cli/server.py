"""The single components `web`, `worker`, `beat` and `migrate` that a deployment runs as
separate containers, and the command lines they share with `studiolo up` (`up.py`).

`up` starts these very command lines as children; the single commands replace themselves
with them (exec), so signals from the container runtime reach the server directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from endpoints.uvicorn_protocol import UVICORN_HTTP
from studio.cli.common import (
    CliError,
    config_load,
    django_setup,
    migrations_pending,
    require_external_redis,
)
from studio.config import Config

# Two kinds of worker, so that control-plane work never waits behind job work:
# - `control`: health checks, healing and deployment of endpoints, job reconciliation,
#   webhooks, the heartbeat, retention. Short or I/O-bound tasks (Docker API calls, HTTP
#   pings, queries), run on a pool of threads: eight at once cost a few MB, and a deployment
#   that waits minutes for /ping never holds up a check. The thread pool enforces no
#   `time_limit` (only prefork can kill a task); these tasks bound themselves with timeouts.
# - `jobs`: one task per running job, held for the job's whole run, in a pool of processes
#   (a job's runner is isolated from the others: its memory, its crashes). The concurrency is
#   how many jobs run at once on this host.
WORKER_ROLES = ("control", "jobs")
WORKER_POOLS = {"control": "threads", "jobs": "prefork"}
WORKER_CONCURRENCY = {"control": 8, "jobs": 2}
# Features of a Celery worker that Studiolo does not use, turned off: each keeps fanout
# channels (remote control's pidbox, gossip, mingle, heartbeats) open beside the task
# channel, and their teardown after a lost Redis connection is what crashed the worker
# (kombu builds a client from a closed connection: `'NoneType' object has no attribute
# 'hostname'`, an AttributeError the consumer does not treat as a connection error).
WORKER_WITHOUT = ("--without-gossip", "--without-mingle", "--without-heartbeat")


# --- the command lines, shared by `up` and the single commands -------------------------


def web_argv(config: Config, host: str, port: int) -> list[str]:
    # One uvicorn process, no --workers: with several workers uvicorn leaves Nagle's
    # algorithm on for kept-alive connections and every answer waits ~40 ms (DESIGN.md).
    return [
        sys.executable, "-m", "uvicorn", "studio.asgi:application",
        "--host", host,
        "--port", str(port),
        "--no-access-log",
        # Forwarded headers are believed from TRUSTED_PROXIES only, by studio.asgi itself.
        "--no-proxy-headers",
        # uvicorn's httptools protocol with the data plane's fast path for invocations.
        "--http", UVICORN_HTTP,
        # On: the data plane writes its last invocation counters at lifespan shutdown (uvicorn
        # re-raises SIGTERM once stopped, so atexit handlers never run).
        "--lifespan", "on",
        "--log-level", config.log_level.lower(),
        # Open websockets would otherwise hold a SIGTERM until the grace period runs out.
        "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip


def worker_queues(role: str) -> list[str]:
    """The queues a worker of `role` consumes: for `control`, Celery's default queue (where
    beat sends the heartbeat, reconciliation and every task that names no queue) and the
    endpoints' queue; for `jobs`, one queue per instance type."""
    from django.conf import settings

    from compute.instance_types import job_queues
    from endpoints.tasks import QUEUE as ENDPOINTS_QUEUE

    if role == "control":
        return [settings.CELERY_TASK_DEFAULT_QUEUE, ENDPOINTS_QUEUE]
    return list(dict.fromkeys(job_queues()))


def worker_argv(
    role: str,
    *,
    log_level: str,
    queues: list[str],
    concurrency: int | None = None,
    hostname: str | None = None,
) -> list[str]:
    """`celery worker` for `role` (`control` or `jobs`), as `up`, `studiolo worker` and the
    test suite's workers all run it."""
    return [
        sys.executable, "-m", "celery", "-A", "studio.celery", "worker",
        "--loglevel", log_level,
        "--pool", WORKER_POOLS[role],
        "--concurrency", str(concurrency or WORKER_CONCURRENCY[role]),
        "-Q", ",".join(queues),
        # Two workers of one host (`up` runs both) need two names.
        "--hostname", hostname or f"{role}@%h",
        *WORKER_WITHOUT,
    ]  # fmt: skip


def beat_argv(*, log_level: str, schedule: Path) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "studio.celery", "beat",
        "--loglevel", log_level,
        "--schedule", str(schedule),
    ]  # fmt: skip


def beat_schedule_file(config: Config) -> Path:
    return config.home / "run" / "celerybeat-schedule"


def child_env(config: Config) -> dict[str, str]:
    """The children's environment: ours, with the data folder made absolute.

    REDIS_URL is deliberately not filled in for the embedded Redis: the children derive the
    same unix socket from STUDIOLO_HOME, and an explicit REDIS_URL would make them believe
    the Redis is external (settings.REDIS_EMBEDDED, reported by /readyz and doctor).
    """
    env = dict(os.environ)
    env["STUDIOLO_HOME"] = str(config.home)
    env.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the terminal as they are written
    return env


def _exec(argv: list[str], env: dict[str, str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # noqa: S606 - argv is ours, built above; no shell
    return 0  # pragma: no cover - execve does not return


# --- database --------------------------------------------------------------------------


def migrate_database(*, verbosity: int) -> int:
    """Apply pending migrations (Django set up already); returns how many there were."""
    from django.core.management import call_command
    from django.db import DatabaseError

    pending = migrations_pending()
    if pending:
        try:
            call_command("migrate", interactive=False, verbosity=verbosity)
        except DatabaseError as exc:
            raise CliError(f"migrating the database failed: {exc}") from exc
    return pending


# --- single components -----------------------------------------------------------------


def web(args: argparse.Namespace) -> int:
    config = config_load()
    require_external_redis(config, "web")
    return _exec(web_argv(config, args.host, args.port), child_env(config))


def worker(args: argparse.Namespace) -> int:
    config = config_load()
    require_external_redis(config, "worker")
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    if queues is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
        queues = worker_queues(args.role)
    argv = worker_argv(
        args.role, log_level=config.log_level, queues=queues, concurrency=args.concurrency
    )
    return _exec(argv, child_env(config))


def beat(args: argparse.Namespace) -> int:
    config = config_load()
    require_external_redis(config, "beat")
    (config.home / "run").mkdir(parents=True, exist_ok=True)
    argv = beat_argv(log_level=config.log_level, schedule=beat_schedule_file(config))
    return _exec(argv, child_env(config))


def migrate(args: argparse.Namespace) -> int:
    # In-process, like `up`: migrating needs the database only, so no REDIS_URL is required.
    config_load()
    django_setup()
    applied = migrate_database(verbosity=1)
    if not applied:
        print("Database up to date")
    return 0


# --- parsers ---------------------------------------------------------------------------


def parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from exc
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("expected a port between 1 and 65535")
    return port


def _concurrency(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {raw!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("web", help="only the ASGI server (needs REDIS_URL)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=parse_port, default=8000, help="port to listen on (default 8000)"
    )
    parser.set_defaults(func=web)

    parser = commands.add_parser("worker", help="only a Celery worker (needs REDIS_URL)")
    parser.add_argument(
        "--role", choices=WORKER_ROLES, default="jobs",
        help="jobs (default): runs training and transform jobs, a process per job; control: "
        "endpoint health checks and healing, reconciliation, webhooks, the heartbeat, on "
        "threads. A deployment needs at least one of each",
    )  # fmt: skip
    parser.add_argument(
        "--queues", help="comma-separated queues (default: every queue of the role)"
    )
    parser.add_argument(
        "--concurrency", type=_concurrency, default=None,
        help="jobs at once (processes; default {jobs}) or control tasks at once (threads; "
        "default {control})".format(**WORKER_CONCURRENCY),
    )  # fmt: skip
    parser.set_defaults(func=worker)

    parser = commands.add_parser("beat", help="only the periodic-task scheduler (needs REDIS_URL)")
    parser.set_defaults(func=beat)

    parser = commands.add_parser("migrate", help="apply database migrations")
    parser.set_defaults(func=migrate)
