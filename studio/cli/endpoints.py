"""`studiolo endpoints ...`: real-time endpoints from the command line (client commands: the
REST API for create, update, list, describe and delete; the data plane for `invoke`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from studio.cli.client import ApiClient
from studio.cli.common import TIMED_OUT, CliError, positive
from studio.cli.output import print_json, print_table

ENDPOINT_LIMIT = 10_000
POLL_SECONDS = 1.0
# `--wait` gives up after this long by default: longer than an endpoint's own start-up
# timeout (ENDPOINT_STARTUP_TIMEOUT_SECONDS) plus a rollout's drain, so a healthy studio
# always answers first.
WAIT_TIMEOUT = 900
INTERRUPTED = 130
# The data plane answers within ENDPOINT_INVOCATION_TIMEOUT_SECONDS (60 s by default) or
# says 504; wait a little longer than that so its own answer is what the user sees.
INVOKE_TIMEOUT = httpx.Timeout(75.0, connect=5.0)
VARIANT_HEADER = "x-amzn-invoked-production-variant"
TEAM_HEADER = "X-Studiolo-Team"
IN_SERVICE, FAILED, UPDATING = "InService", "Failed", "Updating"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _package_ref(raw: str) -> str:
    """GROUP/VERSION, e.g. churn/3: checked here so a typo costs no request."""
    group, sep, version = raw.rpartition("/")
    if not sep or not group or not version.isdigit():
        raise argparse.ArgumentTypeError(f"expected GROUP/VERSION like churn/3, got {raw!r}")
    return raw


def _url(name: str) -> str:
    return f"/api/v1/endpoints/{quote(name, safe='')}"


def _short_time(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else "-"


def _instances(endpoint: dict[str, Any]) -> str:
    return f"{endpoint.get('healthy_count') or 0}/{endpoint.get('instance_count') or 0}"


# --- following an endpoint ---------------------------------------------------------------


class Watcher:
    """Polls GET /api/v1/endpoints/NAME and prints what is new: status changes and the
    endpoint's events (instances started, healthy, replaced...), once each, on stderr."""

    def __init__(
        self, client: ApiClient, name: str, team: str | None, *, timeout: float = WAIT_TIMEOUT
    ) -> None:
        self.client = client
        self.name = name
        self.team = team
        self.timeout = timeout
        self.seen: set[tuple[str, str, str]] = set()

    def read(self) -> dict[str, Any] | None:
        """The endpoint as the API describes it, or None once it is gone (404)."""
        response = self.client.send("GET", _url(self.name), params={"team": self.team})
        if response.status_code == 404:
            return None
        if response.is_error:
            raise CliError(self.client.error_message(response))
        endpoint: dict[str, Any] = response.json()
        return endpoint

    def skip_history(self, endpoint: dict[str, Any]) -> None:
        """Events that happened before the command started are not news."""
        self.seen.update(self._key(event) for event in endpoint.get("events", []))

    def show(self, endpoint: dict[str, Any]) -> None:
        for event in endpoint.get("events", []):
            key = self._key(event)
            if key in self.seen:
                continue
            self.seen.add(key)
            parts = []
            if event["to_status"]:
                parts.append(f"{event['from_status'] or '-'} -> {event['to_status']}")
            if event["message"]:
                parts.append(event["message"])
            _note(f"{_short_time(event['at'])[11:]}  {self.name}  {': '.join(parts)}")

    @staticmethod
    def _key(event: dict[str, Any]) -> tuple[str, str, str]:
        return (event["at"], event["to_status"], event["message"])

    def until(
        self, done: Callable[[dict[str, Any] | None], bool], *, initial: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Poll until `done(endpoint)`. Ctrl-C (exit 130) and the timeout (exit 124) leave
        the endpoint as it is: the work goes on in the studio either way."""
        endpoint = initial
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                if endpoint is not None:
                    self.show(endpoint)
                if done(endpoint):
                    return endpoint
                if time.monotonic() >= deadline:
                    last = endpoint["status"] if endpoint is not None else "gone"
                    raise CliError(
                        f"timed out after {self.timeout:g} s waiting for endpoint {self.name} "
                        f"(last status: {last}); it carries on: studiolo endpoints describe "
                        f"{self.name}",
                        code=TIMED_OUT,
                    )
                time.sleep(POLL_SECONDS)
                endpoint = self.read()
        except KeyboardInterrupt:
            raise CliError(
                f"detached: endpoint {self.name} carries on; see it with: "
                f"studiolo endpoints describe {self.name}",
                code=INTERRUPTED,
            ) from None


def _wait_for_service(watcher: Watcher, initial: dict[str, Any], config: str | None) -> int:
    """Until InService (0) or Failed (1). After an update, InService with another config
    than the one rolled out means the update failed and was rolled back (1)."""

    def settled(endpoint: dict[str, Any] | None) -> bool:
        if endpoint is None:
            return True
        return endpoint["status"] in (IN_SERVICE, FAILED) and not endpoint["pending_config"]

    final = watcher.until(settled, initial=initial)
    if final is None:
        raise CliError(f"endpoint {watcher.name} was deleted meanwhile")
    if final["status"] == IN_SERVICE and (config is None or final["config"] == config):
        _note(
            f"Endpoint {final['name']}: InService ({_instances(final)} instances healthy), "
            f"POST {final['invocation_url']}"
        )
        return 0
    reason = final["failure_reason"] or "(no reason recorded)"
    if final["status"] == IN_SERVICE:
        _note(f"Endpoint {final['name']}: the update failed; {final['config']} still serves.")
    else:
        _note(f"Endpoint {final['name']}: Failed.")
    _note(f"Failure reason:\n{reason}")
    return 1


# --- commands ----------------------------------------------------------------------------


def _shortcut(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"model": args.model, "instance_count": args.instances}
    if args.instance_type:
        body["instance_type"] = args.instance_type
    return body


def create(args: argparse.Namespace) -> int:
    body = {"name": args.name, **_shortcut(args)}
    if args.team:
        body["team"] = args.team
    with ApiClient.from_env() as client:
        endpoint = client.post("/api/v1/endpoints", body)
        _note(
            f"Creating endpoint {endpoint['name']} in team {endpoint['team']} "
            f"(config {endpoint['config']})"
        )
        if not args.json:
            print(endpoint["name"], flush=True)  # alone on stdout, for scripts
        if not args.wait:
            if args.json:
                print_json(endpoint)
            return 0
        watcher = Watcher(client, endpoint["name"], endpoint["team"], timeout=args.timeout)
        code = _wait_for_service(watcher, endpoint, None)
        if args.json:
            print_json(watcher.read())
        return code


def update(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        path = _url(args.name) + (f"?team={quote(args.team)}" if args.team else "")
        before = client.get(path)
        endpoint = client.patch(path, _shortcut(args))
        config = endpoint["pending_config"]
        _note(f"Updating endpoint {endpoint['name']} to config {config}")
        if not args.wait:
            if args.json:
                print_json(endpoint)
            return 0
        watcher = Watcher(client, endpoint["name"], endpoint["team"], timeout=args.timeout)
        watcher.skip_history(before)
        code = _wait_for_service(watcher, endpoint, config)
        if args.json:
            print_json(watcher.read())
        return code


def endpoints_list(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        endpoints = client.paginate("/api/v1/endpoints", {"team": args.team}, limit=ENDPOINT_LIMIT)
    if args.json:
        print_json(endpoints)
        return 0
    print_table(
        ["name", "team", "status", "config", "instances", "attention", "created by", "created"],
        [
            [
                e["name"],
                e["team"],
                e["status"],
                e["config"] + (f" -> {e['pending_config']}" if e["pending_config"] else ""),
                _instances(e),
                "yes" if e["attention"] else None,
                e["created_by"],
                _short_time(e["created_at"]),
            ]
            for e in endpoints
        ],
        empty="(no endpoints)",
    )
    return 0


def describe(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        endpoint = client.get(_url(args.name), {"team": args.team})
    if args.json:
        print_json(endpoint)
        return 0
    rows = [
        ("Endpoint", f"{endpoint['name']}  (team {endpoint['team']})"),
        ("Status", endpoint["status"]),
        ("Config", endpoint["config"]),
        ("Rolling out", endpoint["pending_config"] or "-"),
        ("Instances", f"{_instances(endpoint)} healthy"),
        ("Invoke", f"POST {endpoint['invocation_url']}"),
        ("Created", f"{_short_time(endpoint['created_at'])} by {endpoint['created_by'] or '-'}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label + ':':<{width}}{value}")
    if endpoint["attention"]:
        print(f"\nATTENTION: {endpoint['attention']}")
    if endpoint["failure_reason"]:
        print(f"\nFailure reason:\n{endpoint['failure_reason']}")
    print()
    print_table(
        ["variant", "model", "package", "approval", "instance type", "count", "weight"],
        [
            [
                v["name"],
                v["model"],
                v["package"],
                v["approval_status"],
                v["instance_type"],
                v["instance_count"],
                f"{v['initial_weight']:g}",
            ]
            for v in endpoint["variants"]
        ],
        empty="(no variants)",
    )
    print()
    print_table(
        ["container", "variant", "status", "address", "last check", "message"],
        [
            [
                i["container"] + ("" if i["current"] else " (other config)"),
                i["variant"],
                i["status"],
                i["address"],
                _short_time(i["last_check_at"]),
                i["message"],
            ]
            for i in endpoint["instances"]
        ],
        empty="(no instances)",
    )
    print()
    print_table(
        ["time", "from", "to", "actor", "message"],
        [
            [_short_time(e["at"]), e["from_status"], e["to_status"], e["actor"], e["message"]]
            for e in endpoint["events"]
        ],
        empty="(no events)",
    )
    return 0


def delete(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        path = _url(args.name) + (f"?team={quote(args.team)}" if args.team else "")
        endpoint = client.delete(path)
        _note(f"Deleting endpoint {endpoint['name']} (team {endpoint['team']})")
        if not args.wait:
            return 0
        watcher = Watcher(client, endpoint["name"], endpoint["team"], timeout=args.timeout)
        current = watcher.read()
        if current is not None:
            watcher.skip_history(current)
        watcher.until(lambda now: now is None, initial=current)
        _note(f"Endpoint {endpoint['name']} is deleted.")
    return 0


def _body(args: argparse.Namespace) -> bytes:
    if args.body is not None:
        return str(args.body).encode()
    if args.file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"--file: cannot read {args.file}: {exc.strerror}") from exc


def invoke(args: argparse.Namespace) -> int:
    """The data plane, as any client calls it: bearer token, raw body, the model's answer."""
    body = _body(args)
    # Without --accept the model answers in its default type (the client's own
    # `Accept: application/json` is for the REST API, not for models).
    headers = {"Content-Type": args.content_type, "Accept": args.accept or "*/*"}
    if args.team:
        headers[TEAM_HEADER] = args.team
    with ApiClient.from_env() as client:
        started = time.perf_counter()
        response = client.send(
            "POST",
            f"/endpoints/{quote(args.name, safe='')}/invocations",
            content=body,
            headers=headers,
            timeout=INVOKE_TIMEOUT,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.is_error:
            raise CliError(_invocation_error(client, response))
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    variant = response.headers.get(VARIANT_HEADER, "-")
    _note(f"variant {variant}, {elapsed_ms:.1f} ms, HTTP {response.status_code}")
    return 0


def _invocation_error(client: ApiClient, response: httpx.Response) -> str:
    """The studio's own refusals carry `{"error": {...}}`; a model's 4xx/5xx answer is its
    body, passed on as the container wrote it."""
    variant = response.headers.get(VARIANT_HEADER)
    if variant is None:
        return client.error_message(response)
    text = response.text.strip() or response.reason_phrase
    return f"HTTP {response.status_code} from variant {variant}: {text}"


# --- wiring ------------------------------------------------------------------------------


def _add_team(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--team",
        metavar="SLUG",
        help="the team (default: your first team; needed when a name "
        "is used in several of your teams)",
    )


def _add_variant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        type=_package_ref,
        metavar="GROUP/VERSION",
        help="an Approved model package to serve (e.g. churn/3)",
    )
    parser.add_argument(
        "--instances",
        type=positive,
        default=1,
        metavar="N",
        help="how many serving containers (default 1)",
    )
    parser.add_argument(
        "--instance-type", metavar="TYPE", help="the containers' size (default ml.local.small)"
    )


def _add_wait(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--wait", action="store_true", help=help_text)
    parser.add_argument(
        "--timeout",
        type=positive,
        default=WAIT_TIMEOUT,
        metavar="SECONDS",
        help=f"with --wait: give up after this long, exit {TIMED_OUT}; the endpoint carries on "
        f"(default {WAIT_TIMEOUT})",
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    endpoints_parser = commands.add_parser(
        "endpoints", help="real-time endpoints: create, update, invoke, delete (client command)"
    )
    sub = endpoints_parser.add_subparsers(
        dest="endpoints_command", metavar="COMMAND", required=True
    )

    parser = sub.add_parser(
        "create",
        help="deploy an approved model package behind a new endpoint",
        description="Create an endpoint serving GROUP/VERSION. Prints its name on stdout.",
    )
    parser.add_argument("name", metavar="NAME", help="letters, digits and hyphens (1-63)")
    _add_variant(parser)
    _add_team(parser)
    _add_wait(parser, "follow it until InService (exit 0) or Failed (1)")
    parser.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    parser.set_defaults(func=create)

    parser = sub.add_parser(
        "update",
        help="serve another model package (a new config is rolled out, then the old one stops)",
    )
    parser.add_argument("name", metavar="NAME")
    _add_variant(parser)
    _add_team(parser)
    _add_wait(parser, "follow the rollout: exit 0 when the new config serves, 1 when it failed")
    parser.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    parser.set_defaults(func=update)

    parser = sub.add_parser("list", help="the endpoints of your teams")
    _add_team(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=endpoints_list)

    parser = sub.add_parser("describe", help="an endpoint: variants, instances and events")
    parser.add_argument("name", metavar="NAME")
    _add_team(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=describe)

    parser = sub.add_parser("delete", help="stop an endpoint's instances and remove it")
    parser.add_argument("name", metavar="NAME")
    _add_team(parser)
    _add_wait(parser, "wait until it is gone")
    parser.set_defaults(func=delete)

    parser = sub.add_parser(
        "invoke",
        help="send one request to an endpoint (POST /endpoints/NAME/invocations)",
        description="Print the model's answer on stdout; the variant and latency on stderr.",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--content-type", required=True, metavar="TYPE", help="text/csv, application/json..."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--body", metavar="TEXT", help="the request body")
    source.add_argument("--file", metavar="PATH", help="read the body from a file (- for stdin)")
    parser.add_argument("--accept", metavar="TYPE", help="the answer's content type")
    _add_team(parser)
    parser.set_defaults(func=invoke)
