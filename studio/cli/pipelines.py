"""`studiolo pipelines ...`: pipeline definitions from the command line (client commands: they
use the REST API only). Create a pipeline from a SageMaker pipeline definition (the JSON that
`Pipeline(...).definition()` writes), update it (a new version when it changed), list,
describe, the versions and the diff between two; start an execution (`--wait` follows its
steps and exits with its result), list a pipeline's executions, describe one, stop one."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from studio.cli.client import ApiClient
from studio.cli.common import CliError, positive
from studio.cli.output import print_json, print_table

PIPELINE_LIMIT = 10_000
EXECUTION_LIMIT = 100
WAIT_POLL_SECONDS = 1.0
# `start --wait` exits with 0 when the execution Succeeded, else with these.
EXIT_CODES = {"Succeeded": 0, "Failed": 1, "Stopped": 3}
TERMINAL = frozenset(EXIT_CODES)


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _url(name: str = "") -> str:
    return f"/api/v1/pipelines/{quote(name, safe='')}" if name else "/api/v1/pipelines"


def _team_params(args: argparse.Namespace) -> dict[str, str]:
    return {"team": args.team} if args.team else {}


def _read_definition(path: str) -> str:
    """The file's text as it is: the server checks it and says where a problem is."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"--definition: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        json.loads(text)
    except ValueError as exc:
        raise CliError(f"--definition: {path} is not JSON: {exc}") from exc
    return text


def _short_time(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else "-"


def _print_steps(version: dict[str, Any]) -> None:
    rows = [
        [
            s["name"],
            s["type"] + (" (function)" if s["is_function"] else ""),
            ", ".join(s["depends_on"]),
            f"{s['condition']}.{s['branch']}" if s["condition"] else "",
            s["cache_enabled"],
        ]
        for s in version["steps"]
    ]
    print_table(["step", "type", "after", "branch", "cached"], rows)


# --- commands ----------------------------------------------------------------------------


def create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "definition": _read_definition(args.definition),
        "description": args.description,
        "version_description": args.comment,
    }
    if args.team:
        body["team"] = args.team
    with ApiClient.from_env() as client:
        pipeline = client.post(_url(), body)
    if args.json:
        print_json(pipeline)
    else:
        steps = len(pipeline["version"]["steps"])
        _note(
            f"Created pipeline {pipeline['name']} in team {pipeline['team']} (version 1, {steps} steps)"
        )
    return 0


def update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"version_description": args.comment}
    if args.definition:
        body["definition"] = _read_definition(args.definition)
    if args.description is not None:
        body["description"] = args.description
    if len(body) == 1:
        raise CliError("give --definition or --description", code=2)
    with ApiClient.from_env() as client:
        path = _url(args.name)
        if args.team:
            path += f"?team={quote(args.team)}"
        pipeline = client.request("PUT", path, json=body)
    if args.json:
        print_json(pipeline)
    elif pipeline["created"]:
        _note(f"Updated pipeline {pipeline['name']}: version {pipeline['version']['number']}")
    else:
        _note(
            f"Pipeline {pipeline['name']}: the definition is version "
            f"{pipeline['version']['number']}'s; no new version"
        )
    return 0


def pipelines_list(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        pipelines = client.paginate(_url(), _team_params(args), limit=PIPELINE_LIMIT)
    if args.json:
        print_json(pipelines)
        return 0
    rows = [
        [
            p["name"],
            p["team"],
            p["latest_version"],
            p["paused"],
            _short_time(p["updated_at"]),
            p["description"],
        ]
        for p in pipelines
    ]
    print_table(["name", "team", "version", "paused", "updated", "description"], rows)
    return 0


def describe(args: argparse.Namespace) -> int:
    params = _team_params(args)
    if args.version:
        params["version"] = str(args.version)
    with ApiClient.from_env() as client:
        pipeline = client.get(_url(args.name), params)
    if args.json:
        print_json(pipeline)
        return 0
    version = pipeline["version"]
    print(f"Pipeline:    {pipeline['name']} (team {pipeline['team']})")
    print(f"Description: {pipeline['description'] or '-'}")
    print(
        f"Version:     {version['number']} of {pipeline['latest_version']}, "
        f"{_short_time(version['created_at'])} by {version['created_by'] or '-'}"
    )
    print(f"Digest:      sha256:{version['digest']}")
    print("Parameters:")
    print_table(
        ["name", "type", "default"],
        [[p["name"], p["type"], json.dumps(p["default"])] for p in version["parameters"]],
    )
    print("Steps:")
    _print_steps(version)
    return 0


def versions(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        rows = client.get(f"{_url(args.name)}/versions", _team_params(args))
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["version", "created", "by", "digest", "description"],
        [
            [
                v["number"],
                _short_time(v["created_at"]),
                v["created_by"],
                v["digest"][:12],
                v["description"],
            ]
            for v in rows
        ],
    )
    return 0


def diff(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        body = client.get(f"{_url(args.name)}/versions/{args.a}/diff/{args.b}", _team_params(args))
    if args.json:
        print_json(body)
    elif body["same"]:
        _note(f"Versions {args.a} and {args.b} are the same")
    else:
        sys.stdout.write(body["diff"])
    return 0


def _parameters(raw: list[str]) -> dict[str, str]:
    """`--param k=v` pairs as text: the server types each value by the definition."""
    values: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--param: {item!r} is not NAME=VALUE", code=2)
        values[name] = value
    return values


def _execution_url(execution_id: int) -> str:
    return f"/api/v1/pipeline-executions/{execution_id}"


def _step_line(step: dict[str, Any]) -> str:
    line = f"  {step['name']}: {step['status']}"
    if step["job_name"]:
        line += f" (job {step['job_name']})"
    if step["failure_reason"]:
        line += f": {step['failure_reason']}"
    return line


def _follow(client: ApiClient, execution: dict[str, Any]) -> dict[str, Any]:
    """Print each step's state as it changes until the execution ends; the last description."""
    seen: dict[str, str] = {}
    while True:
        for step in execution["steps"]:
            if seen.get(step["name"]) != step["status"]:
                seen[step["name"]] = step["status"]
                print(_step_line(step), flush=True)
        if execution["status"] in TERMINAL:
            return execution
        time.sleep(WAIT_POLL_SECONDS)
        execution = client.get(_execution_url(execution["id"]))


def _result(execution: dict[str, Any]) -> None:
    reason = f": {execution['failure_reason']}" if execution["failure_reason"] else ""
    _note(f"Execution {execution['id']} {execution['status']}{reason}")


def start(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"parameters": _parameters(args.param)}
    if args.version:
        body["version"] = args.version
    path = f"{_url(args.name)}/executions"
    if args.team:
        path += f"?team={quote(args.team)}"
    with ApiClient.from_env() as client:
        execution = client.post(path, body)
        if not args.json:
            _note(f"Started execution {execution['id']} of {args.name} v{execution['version']}")
        if args.wait:
            execution = _follow(client, execution)
    if args.json:
        print_json(execution)
    elif args.wait:
        _result(execution)
    return EXIT_CODES.get(execution["status"], 0) if args.wait else 0


def executions(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        rows = client.paginate(
            f"{_url(args.name)}/executions", _team_params(args), limit=EXECUTION_LIMIT
        )
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["id", "version", "status", "started", "ended", "by", "failure"],
        [
            [
                e["id"],
                e["version"],
                e["status"],
                _short_time(e["started_at"]),
                _short_time(e["ended_at"]),
                e["started_by"] or "-",
                e["failure_reason"],
            ]
            for e in rows
        ],
    )
    return 0


def describe_execution(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        execution = client.get(_execution_url(args.id))
    if args.json:
        print_json(execution)
        return 0
    print(f"Execution:  {execution['id']} of {execution['pipeline']} v{execution['version']}")
    print(f"Status:     {execution['status']}")
    if execution["failure_reason"]:
        print(f"Failure:    {execution['failure_reason']}")
    print(f"Parameters: {json.dumps(execution['parameters'])}")
    print_table(
        ["step", "type", "status", "job", "started", "ended", "reason"],
        [
            [
                s["name"],
                s["type"],
                s["status"],
                s["job_name"] or "-",
                _short_time(s["started_at"]),
                _short_time(s["ended_at"]),
                s["failure_reason"],
            ]
            for s in execution["steps"]
        ],
    )
    return 0


def stop(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        execution = client.post(f"{_execution_url(args.id)}/stop")
    if args.json:
        print_json(execution)
    else:
        _note(f"Execution {execution['id']}: {execution['status']}")
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", metavar="SLUG", help="the team (default: your first team)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "pipelines",
        help="pipeline definitions (SageMaker's pipeline JSON) and their versions",
        description="Pipelines: DAGs of processing, training, condition, registration and other "
        "steps, defined in SageMaker's pipeline JSON. See docs/pipelines.md.",
    )
    sub = group.add_subparsers(dest="pipelines_command", metavar="COMMAND", required=True)

    parser = sub.add_parser("create", help="create a pipeline from a definition file")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--definition", required=True, metavar="FILE", help="the definition JSON (- for stdin)"
    )
    parser.add_argument("--description", default="", help="what the pipeline does")
    parser.add_argument("--comment", default="", help="a note on this version")
    _add_common(parser)
    parser.set_defaults(func=create)

    parser = sub.add_parser(
        "update", help="a new definition (a new version if it changed) or description"
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--definition", metavar="FILE", help="the definition JSON (- for stdin)")
    parser.add_argument("--description", default=None, help="the pipeline's new description")
    parser.add_argument("--comment", default="", help="what changed in this version")
    _add_common(parser)
    parser.set_defaults(func=update)

    parser = sub.add_parser("list", help="the pipelines of your teams")
    _add_common(parser)
    parser.set_defaults(func=pipelines_list)

    parser = sub.add_parser("describe", help="a pipeline: its parameters and steps")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--version", type=positive, metavar="N", help="this version (default: newest)"
    )
    _add_common(parser)
    parser.set_defaults(func=describe)

    parser = sub.add_parser("versions", help="a pipeline's versions, newest first")
    parser.add_argument("name", metavar="NAME")
    _add_common(parser)
    parser.set_defaults(func=versions)

    parser = sub.add_parser("diff", help="a unified diff between two versions' definitions")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("a", type=positive, metavar="A")
    parser.add_argument("b", type=positive, metavar="B")
    _add_common(parser)
    parser.set_defaults(func=diff)

    parser = sub.add_parser("start", help="start an execution with parameter values")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter's value (repeat for several); the others take their defaults",
    )
    parser.add_argument(
        "--version", type=positive, metavar="N", help="run this version (default: newest)"
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="print step states as they change; exit 0 when it succeeds, 1 failed, 3 stopped",
    )
    _add_common(parser)
    parser.set_defaults(func=start)

    parser = sub.add_parser("executions", help="a pipeline's executions, newest first")
    parser.add_argument("name", metavar="NAME")
    _add_common(parser)
    parser.set_defaults(func=executions)

    parser = sub.add_parser("describe-execution", help="an execution and its steps")
    parser.add_argument("id", type=positive, metavar="ID")
    _add_common(parser)
    parser.set_defaults(func=describe_execution)

    parser = sub.add_parser("stop", help="stop an execution (its running jobs are stopped)")
    parser.add_argument("id", type=positive, metavar="ID")
    _add_common(parser)
    parser.set_defaults(func=stop)
