"""Studiolo's configuration, read once from the environment.

Every setting a deployment can change is read here and nowhere else, so the README's
table of settings and this module can be checked against each other (tests do). A bad
value raises `ConfigError` whose message is one line naming the variable; the CLI and
`manage.py` print that line and exit instead of showing a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

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
        'JSON object overriding the instance types: `{"ml.gpu.1": {"cpus": 4, "memory_mb": 16384, "gpus": 1}}`. Each has its own Celery queue `jobs.<type>`.',
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


class ConfigError(ImproperlyConfigured):
    """A setting has a bad value; the message is one line naming the variable."""


@dataclass(frozen=True)
class ProxySecurity:
    """HTTPS behind a reverse proxy: cookie flags, HSTS, and whose forwarded headers count."""

    secure_cookies: bool
    hsts_seconds: int
    trusted_proxies: list[str]


def _proxy_security(env: Mapping[str, str]) -> ProxySecurity:
    proxies = []
    for proxy in _list(env.get("TRUSTED_PROXIES"), []):
        try:
            # Spelled as the network it names (172.18.0.1/16 -> 172.18.0.0/16): uvicorn's
            # parser would otherwise take a network with host bits for a literal and trust none.
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"TRUSTED_PROXIES: {proxy!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
        proxies.append(str(network.network_address) if "/" not in proxy else str(network))
    return ProxySecurity(
        secure_cookies=_bool("SECURE_COOKIES", env.get("SECURE_COOKIES"), default=False),
        # Two years is what the HSTS preload list asks for; more is never useful.
        hsts_seconds=_int("HSTS_SECONDS", env.get("HSTS_SECONDS"), 0, 0, 63_072_000),
        trusted_proxies=proxies,
    )


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


def _bool(name: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _list(raw: str | None, default: list[str]) -> list[str]:
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _home(env: Mapping[str, str]) -> Path:
    raw = env.get("STUDIOLO_HOME") or "~/.studiolo"
    home = Path(raw).expanduser()
    if not home.is_absolute():
        home = Path.cwd() / home
    if home.exists() and not home.is_dir():
        raise ConfigError(f"STUDIOLO_HOME: {home} exists and is not a folder")
    return home


def _database(env: Mapping[str, str], home: Path) -> tuple[str, dict[str, object]]:
    url = env.get("DATABASE_URL") or f"sqlite:///{home / 'studiolo.sqlite3'}"
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "postgres", "postgresql", "pgsql"):
        raise ConfigError(
            f"DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:///path or postgres://...)"
        )
    try:
        parsed = dict(environ.Env.db_url_config(url))
    except Exception as exc:  # django-environ raises a variety of errors on garbage
        raise ConfigError(f"DATABASE_URL: cannot parse {url!r}: {exc}") from exc
    if scheme == "sqlite":
        if not parsed.get("NAME") or parsed["NAME"] == ":memory:":
            raise ConfigError("DATABASE_URL: a SQLite URL needs a file path (sqlite:////abs/path)")
        # WAL lets the web server read while a worker writes; the busy timeout rides out
        # the short write locks of the other processes instead of failing at once.
        parsed["OPTIONS"] = {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    # Each web thread (WEB_THREADS) and worker process keeps its connection between
    # requests and tasks; Django checks its age and health at each one's start.
    parsed["CONN_MAX_AGE"] = 60
    parsed["CONN_HEALTH_CHECKS"] = True
    return url, parsed


def _redis(env: Mapping[str, str], home: Path) -> tuple[str, bool]:
    raw = env.get("REDIS_URL", "")
    if raw == "":
        return f"unix://{home / 'run' / 'redis.sock'}", True
    scheme = urlsplit(raw).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"REDIS_URL: expected redis://host:port/db or unix:///path, got {raw!r}")
    if scheme != "unix" and not urlsplit(raw).hostname:
        raise ConfigError(f"REDIS_URL: no host in {raw!r}")
    return raw, False


def _artifact_store(env: Mapping[str, str], home: Path) -> str:
    raw = env.get("ARTIFACT_STORE") or str(home / "artifacts")
    parts = urlsplit(raw)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"ARTIFACT_STORE: no bucket in {raw!r} (use s3://bucket/prefix)")
        return raw
    if parts.scheme == "file":
        raw = parts.path
    elif parts.scheme:
        raise ConfigError(
            f"ARTIFACT_STORE: unsupported scheme {parts.scheme!r} (a folder or s3://bucket/prefix)"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"ARTIFACT_STORE: a local store needs an absolute path, got {raw!r}")
    return str(path)


def _secret_key(env: Mapping[str, str], home: Path) -> str:
    raw = env.get("SECRET_KEY")
    if raw is not None:
        if len(raw) < 32:
            raise ConfigError("SECRET_KEY: must be at least 32 characters")
        return raw
    # The embedded default: a random key made on first start and kept in the data folder,
    # so sessions and signed links survive restarts. Nothing secret is baked into the code.
    path = home / "secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    try:
        home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()  # another process made it a moment ago
    except OSError as exc:
        raise ConfigError(
            f"SECRET_KEY: unset, and {path} cannot be created: {exc.strerror}"
        ) from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


DEFAULT_INSTANCE_TYPES: dict[str, dict[str, float]] = {
    "ml.local.small": {"cpus": 1, "memory_mb": 1024, "gpus": 0},
    "ml.local.medium": {"cpus": 1, "memory_mb": 2048, "gpus": 0},
    "ml.local.large": {"cpus": 2, "memory_mb": 4096, "gpus": 0},
}


def _instance_types(env: Mapping[str, str]) -> dict[str, dict[str, float]]:
    raw = env.get("INSTANCE_TYPES")
    if not raw:
        return DEFAULT_INSTANCE_TYPES
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"INSTANCE_TYPES: not valid JSON ({exc.msg} at {exc.pos})") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError(
            "INSTANCE_TYPES: expected a JSON object of name -> {cpus, memory_mb, gpus}"
        )
    types: dict[str, dict[str, float]] = {}
    for name, spec in parsed.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,62}", name):
            raise ConfigError(
                f"INSTANCE_TYPES: bad name {name!r} (lower-case letters, digits, dots, hyphens)"
            )
        if not isinstance(spec, dict) or set(spec) - {"cpus", "memory_mb", "gpus"}:
            raise ConfigError(f"INSTANCE_TYPES: {name} must be {{cpus, memory_mb, gpus}}")
        numbers = [spec.get("cpus"), spec.get("memory_mb"), spec.get("gpus", 0)]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            raise ConfigError(f"INSTANCE_TYPES: {name} needs numeric cpus and memory_mb")
        cpus, memory, gpus = (float(v) for v in numbers)
        if cpus <= 0 or memory < 16 or gpus < 0:
            raise ConfigError(f"INSTANCE_TYPES: {name} needs cpus > 0, memory_mb >= 16, gpus >= 0")
        types[name] = {"cpus": float(cpus), "memory_mb": float(memory), "gpus": float(gpus)}
    return types


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    home = _home(env)
    database_url, database = _database(env, home)
    redis_url, redis_embedded = _redis(env, home)
    runtime = (env.get("RUNTIME") or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise ConfigError(f"RUNTIME: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
    log_level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    s3_endpoint = env.get("S3_ENDPOINT_URL") or None
    if s3_endpoint and urlsplit(s3_endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"S3_ENDPOINT_URL: expected an http(s) URL, got {s3_endpoint!r}")
    origins = _list(env.get("CSRF_TRUSTED_ORIGINS"), [])
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
        artifact_store=_artifact_store(env, home),
        s3_endpoint_url=s3_endpoint,
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        runtime=runtime,
        secret_key=_secret_key(env, home),
        allowed_hosts=_list(env.get("ALLOWED_HOSTS"), ["localhost", "127.0.0.1", "[::1]"]),
        csrf_trusted_origins=origins,
        debug=_bool("DEBUG", env.get("DEBUG"), default=False),
        log_level=log_level,
        instance_types=_instance_types(env),
        jobs_work_dir=_absolute_path("JOBS_WORK_DIR", env.get("JOBS_WORK_DIR"), home / "work"),
        archive_max_expanded_mb=_int(
            "ARCHIVE_MAX_EXPANDED_MB",
            env.get("ARCHIVE_MAX_EXPANDED_MB"),
            10240,
            1,
            16 * 1024 * 1024,
        ),
        archive_max_files=_int(
            "ARCHIVE_MAX_FILES", env.get("ARCHIVE_MAX_FILES"), 100_000, 1, 100_000_000
        ),
        archive_max_ratio=_int(
            "ARCHIVE_MAX_RATIO", env.get("ARCHIVE_MAX_RATIO"), 200, 1, 1_000_000
        ),
        job_stop_grace_seconds=_int(
            "JOB_STOP_GRACE_SECONDS", env.get("JOB_STOP_GRACE_SECONDS"), 120, 0, 3600
        ),
        job_lease_seconds=_int("JOB_LEASE_SECONDS", env.get("JOB_LEASE_SECONDS"), 30, 2, 3600),
        endpoint_startup_timeout_seconds=_int(
            "ENDPOINT_STARTUP_TIMEOUT_SECONDS",
            env.get("ENDPOINT_STARTUP_TIMEOUT_SECONDS"),
            240,
            1,
            3600,
        ),
        endpoint_invocation_timeout_seconds=_int(
            "ENDPOINT_INVOCATION_TIMEOUT_SECONDS",
            env.get("ENDPOINT_INVOCATION_TIMEOUT_SECONDS"),
            60,
            1,
            3600,
        ),
        endpoint_health_check_seconds=_int(
            "ENDPOINT_HEALTH_CHECK_SECONDS", env.get("ENDPOINT_HEALTH_CHECK_SECONDS"), 5, 1, 3600
        ),
        endpoint_network=_network("ENDPOINT_NETWORK", env.get("ENDPOINT_NETWORK")),
        tracking_retention_days=_int(
            "TRACKING_RETENTION_DAYS", env.get("TRACKING_RETENTION_DAYS"), 30, 0, 36500
        ),
        web_threads=_int("WEB_THREADS", env.get("WEB_THREADS"), 8, 1, 256),
        webhook_allowed_hosts=_allowed_hosts(
            "WEBHOOK_ALLOWED_HOSTS", env.get("WEBHOOK_ALLOWED_HOSTS")
        ),
        container_pids_limit=_int(
            "CONTAINER_PIDS_LIMIT", env.get("CONTAINER_PIDS_LIMIT"), 4096, 64, 4_194_304
        ),
        container_tmp_percent=_int(
            "CONTAINER_TMP_PERCENT", env.get("CONTAINER_TMP_PERCENT"), 50, 1, 100
        ),
        proxy_security=_proxy_security(env),
        search_timeout_seconds=_int(
            "SEARCH_TIMEOUT_SECONDS", env.get("SEARCH_TIMEOUT_SECONDS"), 10, 1, 3600
        ),
        search_max_pattern_length=_int(
            "SEARCH_MAX_PATTERN_LENGTH", env.get("SEARCH_MAX_PATTERN_LENGTH"), 500, 1, 100_000
        ),
    )


def _int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def _network(name: str, raw: str | None) -> str:
    """A user-defined Docker network's name, or "" (unset). `host` (the container would serve
    on every interface of the machine), `none` and `container:<id>` are refused."""
    value = (raw or "").strip()
    if not value:
        return ""
    if value in ("host", "none") or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", value):
        raise ConfigError(
            f"{name}: expected the name of a user-defined Docker network, got {value!r}"
        )
    return value


_HOST_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def _allowed_hosts(name: str, raw: str | None) -> tuple[str, ...]:
    """Host names (lower case) and IP networks (`10.0.0.0/8`; an address alone is a /32 or
    /128), normalised; anything else is refused."""
    entries: list[str] = []
    for item in _list(raw, []):
        try:
            entries.append(str(ipaddress.ip_network(item, strict=False)))
            continue
        except ValueError:
            pass
        host = item.lower().rstrip(".")
        if not _HOST_NAME.match(host):
            raise ConfigError(f"{name}: {item!r} is neither a host name nor an IP network")
        entries.append(host)
    return tuple(entries)


def _absolute_path(name: str, raw: str | None, default: Path) -> Path:
    if not raw:
        return default
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{name}: expected an absolute path, got {raw!r}")
    return path


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a unix-socket Redis `redis+socket:///path`."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"redis+socket://{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return redis_url
