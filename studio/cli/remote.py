"""Client commands: they talk to a running studio over its REST API (STUDIOLO_URL,
STUDIOLO_TOKEN) and never touch the database."""

from __future__ import annotations

import argparse

from studio.cli.client import ApiClient
from studio.cli.common import positive
from studio.cli.output import print_json, print_table


def whoami(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        me = client.get("/api/v1/me")
    if args.json:
        print_json(me)
        return 0
    print(f"{me['username']}  ({client.base_url})")
    print_table(
        ["team", "name", "role", "bucket"],
        [
            [team["slug"], team["name"], team["role"], f"s3://{team['bucket']}/"]
            for team in me.get("teams", [])
        ],
        empty="(member of no team)",
    )
    return 0


def audit(args: argparse.Namespace) -> int:
    params = {"team": args.team, "action": args.action, "actor": args.actor}
    with ApiClient.from_env() as client:
        events = client.paginate("/api/v1/audit", params, limit=args.limit)
    if args.json:
        print_json(events)
        return 0
    print_table(
        ["time", "actor", "action", "object", "team", "details"],
        [
            [
                _short_time(event["created_at"]),
                event["actor"],
                event["action"],
                event["object_repr"] or f"{event['object_type']}:{event['object_id']}",
                event["team"],
                event["details"] or None,
            ]
            for event in events
        ],
        empty="(no events)",
    )
    return 0


def _short_time(iso: str | None) -> str:
    """2025-01-31T12:34:56.789012Z -> 2025-01-31 12:34:56 (the API answers in UTC)."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "whoami", help="the user behind STUDIOLO_TOKEN and their teams (client command)"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=whoami)

    parser = commands.add_parser("audit", help="read the audit log (client command)")
    parser.add_argument("--team", help="only events of this team (slug)")
    parser.add_argument("--action", help='exact action, or a prefix ending in "." (token.)')
    parser.add_argument("--actor", help="only events caused by this user (or `system`)")
    parser.add_argument("--limit", type=positive, default=50, help="at most N events (default 50)")
    parser.add_argument("--json", action="store_true", help="print the events as JSON")
    parser.set_defaults(func=audit)
