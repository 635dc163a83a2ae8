"""Studiolo's configuration, read once from the environment.

Every setting a deployment can change is read here and nowhere else (with the readers of
`studio.config_readers`), so the README's table of settings and this module can be checked
against each other (tests do). A bad value raises `ConfigError` whose message is one line
naming the variable; the CLI and `manage.py` print that line and exit instead of showing a
traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from studio.config_readers import ConfigError as ConfigError
from studio.config_readers import ProxySecurity as ProxySecurity
from studio.config_readers import (
    read_absolute_path,
    read_allowed_hosts,
    read_artifact_store,
    read_bool,
    read_database,
    read_home,
    read_instance_types,
    read_int,
    read_list,
    read_network,
    read_proxy_security,
    read_redis,
    read_secret_key,
)

RUNTIMES = ("auto", "docker", "process")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# name -> (default shown in docs, meaning). The README table is written from this.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "STUDIOLO_HOME": (
        "~/.studiolo",
        "Data folder: SQLite database, embedded Redis, local artifacts, secret key, logs.",
    ),
    "DATABASE_URL": (
        "sqlite:///$STUDIOLO_HOME/studiolo.sqlite3",
        "Database URL; `postgres://user:pass@host:5432/name` for PostgreSQL.",
    ),
    "REDIS_URL": (
        "embedded",
        "Redis for Celery and live events. Unset: `studiolo up` starts an embedded redis-server on a unix socket in `$STUDIOLO_HOME/run/`.",
    ),
    "ARTIFACT_STORE": (
        "$STUDIOLO_HOME/artifacts",
        "A local folder, or `s3://bucket/prefix` for any S3-compatible store (through boto3).",
    ),
    "S3_ENDPOINT_URL": (
        "unset (AWS)",
        "Endpoint of an S3-compatible server (MinIO, Ceph...). Credentials come from the usual `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` variables.",
    ),
    "AWS_REGION": ("us-east-1", "Region passed to boto3 for the S3 store."),
    "RUNTIME": (
        "auto",
        "Container runtime: `docker`, `process` (unisolated local processes) or `auto` (Docker when an engine answers, else process; `studiolo up` decides once at start for all its processes).",
    ),
    "SECRET_KEY": (
        "generated into $STUDIOLO_HOME/secret-key",
        "Django's signing key. Set it explicitly for any shared deployment.",
    ),
    "ALLOWED_HOSTS": (
        "localhost,127.0.0.1,[::1]",
        "Comma-separated host names the server answers to.",
    ),
    "CSRF_TRUSTED_ORIGINS": (
        "empty",
        "Comma-separated origins (`https://studio.example.org`) allowed to post forms through a proxy.",
    ),
    "DEBUG": ("false", "Django debug mode (`true`/`false`). Never on in production."),
    "LOG_LEVEL": ("INFO", "Log level of the server and workers."),
    "INSTANCE_TYPES": (
        "built in (ml.local.small, ml.local.medium, ml.local.large)",
        'JSON object overriding the instance types: `{"ml.gpu.1": {"cpus": 4, "memory_mb": 16384, "gpus": 1, "max_count": 2}}`. Each has its own Celery queue `jobs.<type>`. `max_count` (default 4, at most 100) is the most instances of the type one job may use (`InstanceCount`).',
    ),
    "JOBS_WORK_DIR": (
        "$STUDIOLO_HOME/work",
        "Where workers lay out each job's `/opt/ml` folder. With the Docker runtime it must be a path the engine sees (compose shares it).",
    ),
    "ARCHIVE_MAX_EXPANDED_MB": (
        "10240",
        "Most content, in MiB, one source or model archive may unpack to; a bigger one is refused (at submission when its headers say so, else when it is unpacked), naming this limit. Raise it for models over 10 GiB.",
    ),
    "ARCHIVE_MAX_FILES": (
        "100000",
        "Most members (files, folders, links) one source or model archive may hold.",
    ),
    "ARCHIVE_MAX_RATIO": (
        "200",
        "Most times an archive's content may exceed the archive's own size (checked past 1 MiB of content): code and data compress 3-20 times, an archive bomb a thousand.",
    ),
    "JOB_STOP_GRACE_SECONDS": (
        "120",
        "Seconds between SIGTERM and SIGKILL when a job is stopped (SageMaker uses 120).",
    ),
    "JOB_LEASE_SECONDS": (
        "30",
        "How long a job's worker may go silent before the job is handed to another worker (which re-attaches to its container). A worker renews its lease every few seconds through every phase of the job; one that lost it (stalled past it) is fenced off and writes nothing more.",
    ),
    "ENDPOINT_STARTUP_TIMEOUT_SECONDS": (
        "240",
        "How long a new endpoint instance may take to answer `/ping` before the endpoint (or the update) fails (SageMaker allows 4 minutes).",
    ),
    "ENDPOINT_INVOCATION_TIMEOUT_SECONDS": (
        "60",
        "Data plane: how long an invocation may wait for the model's answer before it gets 504 (SageMaker's limit is 60 s).",
    ),
    "ENDPOINT_HEALTH_CHECK_SECONDS": (
        "5",
        "How often every endpoint instance is checked (container alive, `/ping` answers); a failing instance is replaced.",
    ),
    "ENDPOINT_NETWORK": (
        "unset",
        "Docker network that the studio's own containers share when it runs in containers itself (compose sets `studiolo-serving`): the worker attaches those containers (the ones on it that the studio did not start) to each team's serving network, and the studio reaches serving containers at their address there; nothing is published. Unset: the studio runs on the engine's host and reaches serving containers at their address on their team's bridge; only when that bridge is not this host's (Docker Desktop, a remote engine) is port 8080 published, on 127.0.0.1 only.",
    ),
    "TRACKING_RETENTION_DAYS": (
        "30",
        "Days a deleted run or experiment stays restorable; then a periodic task purges it for good: metric points and rollups, params, tags and its artifacts in the store (`0`: at the next pass, hourly).",
    ),
    "WEB_THREADS": (
        "8",
        "Threads of the web server that run Django's views (each keeps a database connection, reused for up to 60 s): how many page, API and tracking requests one web process serves at once while others wait on the database.",
    ),
    "WEBHOOK_ALLOWED_HOSTS": (
        "empty",
        "Comma-separated host names and IP networks (`hooks.corp.example,10.20.0.0/16,127.0.0.1`) that webhooks may call although they are internal: by default loopback, private, link-local, CGNAT, multicast and reserved addresses and cloud metadata names are refused, at creation and after resolving the name at each delivery. A failed answer from a target allowed only through this list is logged with its status code alone.",
    ),
    "CONTAINER_PIDS_LIMIT": (
        "4096",
        "Most processes and threads one container (job, transform, endpoint instance) may run at once; a fork bomb stops there. Threads count: PyTorch DataLoader workers with their BLAS and OpenMP threads, or a JVM, use hundreds.",
    ),
    "CONTAINER_TMP_PERCENT": (
        "50",
        "Size of each container's `/tmp` (a tmpfs: the root file system is read-only) in percent of its instance type's memory; what it holds counts against that memory.",
    ),
    # --- behind a TLS proxy (see docs/deployment.md) ---
    "SECURE_COOKIES": (
        "false",
        "`true` when browsers reach the studio over HTTPS only: the session, CSRF and login-device cookies get the Secure flag, so a browser never sends them over plain HTTP.",
    ),
    "HSTS_SECONDS": (
        "0",
        "Strict-Transport-Security max-age sent on HTTPS answers (`0`: none). Once a browser has seen it, it refuses plain HTTP to this host for that long: set it only when HTTPS works for good.",
    ),
    "TRUSTED_PROXIES": (
        "empty",
        "Comma-separated addresses or networks (`127.0.0.1`, `172.18.0.0/16`) of reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed: the client address (login throttling, audit) and HTTPS (HSTS, CSRF) come from them. Empty: those headers are ignored.",
    ),
    "SEARCH_TIMEOUT_SECONDS": (
        "10",
        "How long the queries of one run or experiment search (REST, MLflow, the runs table) may take before they are stopped and the search answers 503: a costly filter cannot hold a database connection and a web thread for longer.",
    ),
    "SEARCH_MAX_PATTERN_LENGTH": (
        "500",
        "Longest `LIKE`/`ILIKE` pattern a search filter may hold (characters); a longer one is refused with a 400 naming the filter.",
    ),
    "STUDIOLO_URL": ("http://127.0.0.1:8000", "Client commands: the studio to talk to."),
    "STUDIOLO_TOKEN": ("unset", "Client commands: an API token (`studiolo token create USER`)."),
}


@dataclass(frozen=True)
class Config:
    home: Path
    database: dict[str, object]
    database_url: str
    redis_url: str
    redis_embedded: bool
    artifact_store: str
    s3_endpoint_url: str | None
    aws_region: str
    runtime: str
    secret_key: str
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    debug: bool
    log_level: str
    instance_types: dict[str, dict[str, float]]
    jobs_work_dir: Path
    archive_max_expanded_mb: int
    archive_max_files: int
    archive_max_ratio: int
    job_stop_grace_seconds: int
    job_lease_seconds: int
    endpoint_startup_timeout_seconds: int
    endpoint_invocation_timeout_seconds: int
    endpoint_health_check_seconds: int
    endpoint_network: str
    tracking_retention_days: int
    web_threads: int
    webhook_allowed_hosts: tuple[str, ...]
    container_pids_limit: int
    container_tmp_percent: int
    proxy_security: ProxySecurity
    search_timeout_seconds: int
    search_max_pattern_length: int

    @property
    def embedded_redis_socket(self) -> Path:
        return self.home / "run" / "redis.sock"


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    home = read_home(env)
    database_url, database = read_database(env, home)
    redis_url, redis_embedded = read_redis(env, home)
    runtime = (env.get("RUNTIME") or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise ConfigError(f"RUNTIME: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
    log_level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    s3_endpoint = env.get("S3_ENDPOINT_URL") or None
    if s3_endpoint and urlsplit(s3_endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"S3_ENDPOINT_URL: expected an http(s) URL, got {s3_endpoint!r}")
    origins = read_list(env.get("CSRF_TRUSTED_ORIGINS"), [])
    for origin in origins:
        if urlsplit(origin).scheme not in ("http", "https"):
            raise ConfigError(
                f"CSRF_TRUSTED_ORIGINS: {origin!r} must start with http:// or https://"
            )
    return Config(
        home=home,
        database=database,
        database_url=database_url,
        redis_url=redis_url,
        redis_embedded=redis_embedded,
        artifact_store=read_artifact_store(env, home),
        s3_endpoint_url=s3_endpoint,
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        runtime=runtime,
        secret_key=read_secret_key(env, home),
        allowed_hosts=read_list(env.get("ALLOWED_HOSTS"), ["localhost", "127.0.0.1", "[::1]"]),
        csrf_trusted_origins=origins,
        debug=read_bool("DEBUG", env.get("DEBUG"), default=False),
        log_level=log_level,
        instance_types=read_instance_types(env),
        jobs_work_dir=read_absolute_path("JOBS_WORK_DIR", env.get("JOBS_WORK_DIR"), home / "work"),
        archive_max_expanded_mb=read_int(
            "ARCHIVE_MAX_EXPANDED_MB",
            env.get("ARCHIVE_MAX_EXPANDED_MB"),
            10240,
            1,
            16 * 1024 * 1024,
        ),
        archive_max_files=read_int(
            "ARCHIVE_MAX_FILES", env.get("ARCHIVE_MAX_FILES"), 100_000, 1, 100_000_000
        ),
        archive_max_ratio=read_int(
            "ARCHIVE_MAX_RATIO", env.get("ARCHIVE_MAX_RATIO"), 200, 1, 1_000_000
        ),
        job_stop_grace_seconds=read_int(
            "JOB_STOP_GRACE_SECONDS", env.get("JOB_STOP_GRACE_SECONDS"), 120, 0, 3600
        ),
        job_lease_seconds=read_int("JOB_LEASE_SECONDS", env.get("JOB_LEASE_SECONDS"), 30, 2, 3600),
        endpoint_startup_timeout_seconds=read_int(
            "ENDPOINT_STARTUP_TIMEOUT_SECONDS",
            env.get("ENDPOINT_STARTUP_TIMEOUT_SECONDS"),
            240,
            1,
            3600,
        ),
        endpoint_invocation_timeout_seconds=read_int(
            "ENDPOINT_INVOCATION_TIMEOUT_SECONDS",
            env.get("ENDPOINT_INVOCATION_TIMEOUT_SECONDS"),
            60,
            1,
            3600,
        ),
        endpoint_health_check_seconds=read_int(
            "ENDPOINT_HEALTH_CHECK_SECONDS", env.get("ENDPOINT_HEALTH_CHECK_SECONDS"), 5, 1, 3600
        ),
        endpoint_network=read_network("ENDPOINT_NETWORK", env.get("ENDPOINT_NETWORK")),
        tracking_retention_days=read_int(
            "TRACKING_RETENTION_DAYS", env.get("TRACKING_RETENTION_DAYS"), 30, 0, 36500
        ),
        web_threads=read_int("WEB_THREADS", env.get("WEB_THREADS"), 8, 1, 256),
        webhook_allowed_hosts=read_allowed_hosts(
            "WEBHOOK_ALLOWED_HOSTS", env.get("WEBHOOK_ALLOWED_HOSTS")
        ),
        container_pids_limit=read_int(
            "CONTAINER_PIDS_LIMIT", env.get("CONTAINER_PIDS_LIMIT"), 4096, 64, 4_194_304
        ),
        container_tmp_percent=read_int(
            "CONTAINER_TMP_PERCENT", env.get("CONTAINER_TMP_PERCENT"), 50, 1, 100
        ),
        proxy_security=read_proxy_security(env),
        search_timeout_seconds=read_int(
            "SEARCH_TIMEOUT_SECONDS", env.get("SEARCH_TIMEOUT_SECONDS"), 10, 1, 3600
        ),
        search_max_pattern_length=read_int(
            "SEARCH_MAX_PATTERN_LENGTH", env.get("SEARCH_MAX_PATTERN_LENGTH"), 500, 1, 100_000
        ),
    )


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a unix-socket Redis `redis+socket:///path`."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"redis+socket://{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return redis_url
