"""`studiolo doctor`: the configuration in effect and the state of every component, from
the same checks as `/readyz` (studio.health), run from this machine."""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import config_load, django_setup, url_masked
from studio.cli.output import print_json

EMBEDDED_REDIS_ABSENT = "not running (start with `studiolo up`)"


def doctor(args: argparse.Namespace) -> int:
    config = config_load()
    django_setup()
    from studio import embedded_redis, health

    settings_in_effect = {
        "home": str(config.home),
        "database_url": url_masked(config.database_url),
        "redis_url": url_masked(config.redis_url),
        "redis_embedded": config.redis_embedded,
        "artifact_store": config.artifact_store,
        "runtime": config.runtime,
    }
    checks: list[dict[str, Any]] = []
    redis_absent = False
    for check in health.readiness():
        row = {**check.as_dict(), "required": True}
        embedded_absent = (
            check.name == "redis"
            and not check.ok
            and config.redis_embedded
            and not embedded_redis.is_running(config.embedded_redis_socket)
        )
        if embedded_absent:
            row["detail"] = EMBEDDED_REDIS_ABSENT
            redis_absent = True
        checks.append(row)
    # A missing worker delays work but breaks nothing that answers requests: a warning.
    worker = {**health.worker_check().as_dict(), "required": False}
    if redis_absent:
        worker["detail"] = "unknown: no Redis to read worker heartbeats from"
    checks.append(worker)
    ok = all(row["ok"] for row in checks if row["required"])

    if args.json:
        print_json({"ok": ok, "config": settings_in_effect, "checks": checks})
        return 0 if ok else 1

    kind = "embedded" if config.redis_embedded else "external"
    lines: list[tuple[str, str, str]] = [
        ("OK", "home", str(config.home)),
        ("OK", "database url", url_masked(config.database_url)),
        ("OK", "redis url", f"{url_masked(config.redis_url)} ({kind})"),
        ("OK", "artifact store", config.artifact_store),
        ("OK", "runtime choice", config.runtime),
    ]
    for row in checks:
        status = "OK" if row["ok"] else ("FAIL" if row["required"] else "WARN")
        lines.append((status, str(row["name"]), f"{row['detail']}  ({row['ms']:.0f} ms)"))
    width = max(len(name) for _, name, _ in lines)
    for status, name, detail in lines:
        print(f"{status:<5} {name:<{width}}  {detail}")
    print("all required checks pass" if ok else "some required checks FAIL")
    return 0 if ok else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "doctor", help="check the configuration and every component; exit 1 if one fails"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=doctor)
