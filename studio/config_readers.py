"""How the environment's text becomes Studiolo's settings: one reader per kind of value
(booleans, bounded integers, lists, paths, network names, host lists) and per section that
needs more than one (data folder, database, Redis, artifact store, secret key, instance
types, HTTPS behind a proxy). Each raises `ConfigError`, one line naming the variable;
`studio.config` puts them together."""

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


class ConfigError(ImproperlyConfigured):
    """A setting has a bad value; the message is one line naming the variable."""


# --- values ------------------------------------------------------------------------------


def read_bool(name: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def read_list(raw: str | None, default: list[str]) -> list[str]:
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def read_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def read_absolute_path(name: str, raw: str | None, default: Path) -> Path:
    if not raw:
        return default
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{name}: expected an absolute path, got {raw!r}")
    return path


def read_network(name: str, raw: str | None) -> str:
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


def read_allowed_hosts(name: str, raw: str | None) -> tuple[str, ...]:
    """Host names (lower case) and IP networks (`10.0.0.0/8`; an address alone is a /32 or
    /128), normalised; anything else is refused."""
    entries: list[str] = []
    for item in read_list(raw, []):
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


# --- sections ----------------------------------------------------------------------------


def read_home(env: Mapping[str, str]) -> Path:
    raw = env.get("STUDIOLO_HOME") or "~/.studiolo"
    home = Path(raw).expanduser()
    if not home.is_absolute():
        home = Path.cwd() / home
    if home.exists() and not home.is_dir():
        raise ConfigError(f"STUDIOLO_HOME: {home} exists and is not a folder")
    return home


def read_database(env: Mapping[str, str], home: Path) -> tuple[str, dict[str, object]]:
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


def read_redis(env: Mapping[str, str], home: Path) -> tuple[str, bool]:
    raw = env.get("REDIS_URL", "")
    if raw == "":
        return f"unix://{home / 'run' / 'redis.sock'}", True
    scheme = urlsplit(raw).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"REDIS_URL: expected redis://host:port/db or unix:///path, got {raw!r}")
    if scheme != "unix" and not urlsplit(raw).hostname:
        raise ConfigError(f"REDIS_URL: no host in {raw!r}")
    return raw, False


def read_artifact_store(env: Mapping[str, str], home: Path) -> str:
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


def read_secret_key(env: Mapping[str, str], home: Path) -> str:
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


# `max_count`: the most instances one job may run of the type (SageMaker's per-type quota).
DEFAULT_MAX_COUNT = 4
DEFAULT_INSTANCE_TYPES: dict[str, dict[str, float]] = {
    "ml.local.small": {"cpus": 1, "memory_mb": 1024, "gpus": 0, "max_count": DEFAULT_MAX_COUNT},
    "ml.local.medium": {"cpus": 1, "memory_mb": 2048, "gpus": 0, "max_count": DEFAULT_MAX_COUNT},
    "ml.local.large": {"cpus": 2, "memory_mb": 4096, "gpus": 0, "max_count": DEFAULT_MAX_COUNT},
}


def read_instance_types(env: Mapping[str, str]) -> dict[str, dict[str, float]]:
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
        if not isinstance(spec, dict) or set(spec) - {"cpus", "memory_mb", "gpus", "max_count"}:
            raise ConfigError(
                f"INSTANCE_TYPES: {name} must be {{cpus, memory_mb, gpus, max_count}}"
            )
        numbers = [
            spec.get("cpus"),
            spec.get("memory_mb"),
            spec.get("gpus", 0),
            spec.get("max_count", DEFAULT_MAX_COUNT),
        ]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            raise ConfigError(f"INSTANCE_TYPES: {name} needs numeric cpus and memory_mb")
        cpus, memory, gpus, max_count = (float(v) for v in numbers)
        if cpus <= 0 or memory < 16 or gpus < 0 or not 1 <= max_count <= 100:
            raise ConfigError(
                f"INSTANCE_TYPES: {name} needs cpus > 0, memory_mb >= 16, gpus >= 0, "
                "max_count 1-100"
            )
        types[name] = {
            "cpus": float(cpus),
            "memory_mb": float(memory),
            "gpus": float(gpus),
            "max_count": float(int(max_count)),
        }
    return types


@dataclass(frozen=True)
class ProxySecurity:
    """HTTPS behind a reverse proxy: cookie flags, HSTS, and whose forwarded headers count."""

    secure_cookies: bool
    hsts_seconds: int
    trusted_proxies: list[str]


def read_proxy_security(env: Mapping[str, str]) -> ProxySecurity:
    proxies = []
    for proxy in read_list(env.get("TRUSTED_PROXIES"), []):
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
        secure_cookies=read_bool("SECURE_COOKIES", env.get("SECURE_COOKIES"), default=False),
        # Two years is what the HSTS preload list asks for; more is never useful.
        hsts_seconds=read_int("HSTS_SECONDS", env.get("HSTS_SECONDS"), 0, 0, 63_072_000),
        trusted_proxies=proxies,
    )
