"""`studiolo experiments ...` and `studiolo runs ...`: experiment tracking from the command line
(client commands: they use the REST API only). Listing experiments, searching an
experiment's runs with MLflow's filter syntax, one run in detail, and runs side by side."""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from studio.cli.client import ApiClient
from studio.cli.common import CliError, positive
from studio.cli.output import print_json, print_table

EXPERIMENT_LIMIT = 10_000
SEARCH_PAGE = 1000
DEFAULT_COLUMNS = 4  # of each kind (params, metrics) when none are chosen or referenced
VIEWS = {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}
DIFFERS = "*"
SAME = " "  # not "": an empty cell would show as "-"

# `params.lr`, ``metrics.`val loss` ``, `tags."a b"` in a filter or an ordering.
_REFERENCE = re.compile(r"""\b(params|metrics|tags)\.(`[^`]+`|"[^"]+"|[\w./:-]+)""")


# --- formatting --------------------------------------------------------------------------


def _number(value: Any) -> str | None:
    """A metric value: 6 significant digits; "NaN"/"Infinity" as the API writes them."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.6g}"
    return str(value)


def _time(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(run: dict[str, Any]) -> str | None:
    if run.get("end_time") is None:
        return "running" if run.get("status") == "RUNNING" else None
    seconds = max(0, (run["end_time"] - run["start_time"]) // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _value(run: dict[str, Any], column: str) -> Any:
    """A run's cell for `params.x`, `metrics.x` (the latest value) or `tags.x`."""
    kind, _, key = column.partition(".")
    if kind == "metrics":
        summary = run.get("metrics", {}).get(key)
        return None if summary is None else _number(summary.get("value"))
    return run.get(kind, {}).get(key)


def _references(*texts: str) -> list[str]:
    """Columns a filter or ordering mentions, in order of first mention."""
    columns: list[str] = []
    for text in texts:
        for kind, key in _REFERENCE.findall(text):
            column = f"{kind}.{key.strip('`"')}"
            if column not in columns:
                columns.append(column)
    return columns


# --- looking things up -------------------------------------------------------------------


def _experiment(client: ApiClient, ref: str, team: str | None, view: str) -> dict[str, Any]:
    """An experiment by exact name (in --team, or the default team), else by numeric id."""
    params: dict[str, str | int | None] = {"name": ref, "team": team, "view": view, "limit": 1}
    found = client.get("/api/v1/experiments", params).get("results", [])
    if found:
        return dict(found[0])
    if ref.isdigit():
        return dict(client.get(f"/api/v1/experiments/{ref}"))
    where = f"team {team}" if team else "your default team (choose another with --team)"
    raise CliError(f"experiment {ref!r} not found in {where}")


def _run(client: ApiClient, run_id: str) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/runs/{quote(run_id, safe='')}"))


# --- commands ----------------------------------------------------------------------------


def experiments_list(args: argparse.Namespace) -> int:
    params: dict[str, str | int | None] = {"team": args.team, "view": VIEWS[args.view]}
    with ApiClient.from_env() as client:
        experiments = client.paginate("/api/v1/experiments", params, limit=args.limit)
    if args.json:
        print_json(experiments)
        return 0
    headers = ["id", "name", "team", "created by", "created", "description"]
    if args.view != "active":
        headers.insert(3, "lifecycle")
    rows = []
    for e in experiments:
        row = [
            e["id"],
            e["name"],
            e["team"],
            e["created_by"],
            (e["created_at"] or "").replace("T", " ")[:19],
            e["description"],
        ]
        if args.view != "active":
            row.insert(3, e["lifecycle"])
        rows.append(row)
    print_table(headers, rows, empty="(no experiments)")
    return 0


def runs_list(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        experiment = _experiment(client, args.experiment, args.team, VIEWS["all"])
        runs: list[dict[str, Any]] = []
        token: str | None = ""
        while token is not None and len(runs) < args.max:
            page = client.post(
                "/api/v1/runs/search",
                {
                    "experiment_ids": [experiment["id"]],
                    "filter": args.filter,
                    "order_by": args.order_by,
                    "view": VIEWS[args.view],
                    "max_results": min(SEARCH_PAGE, args.max - len(runs)),
                    "page_token": token,
                },
            )
            runs.extend(page["runs"])
            token = page.get("next_page_token")
    if args.json:
        print_json(runs)
        return 0
    columns = _columns(args, runs)
    headers = ["run id", "name", "status", "started", "duration", *columns]
    rows = [
        [
            run["run_id"],
            run["name"],
            run["status"] if run["lifecycle"] == "active" else f"{run['status']} (deleted)",
            _time(run["start_time"]),
            _duration(run),
            *(_value(run, column) for column in columns),
        ]
        for run in runs
    ]
    print_table(headers, rows, empty=f"(no runs in {experiment['name']} match)")
    return 0


def _columns(args: argparse.Namespace, runs: list[dict[str, Any]]) -> list[str]:
    if args.columns:
        chosen = []
        for raw in args.columns.split(","):
            column = raw.strip()
            if not column:
                continue
            if column.split(".", 1)[0] not in ("params", "metrics", "tags"):
                # A bare name: a metric when some run has one by that name, else a param.
                has_metric = any(column in run.get("metrics", {}) for run in runs)
                column = f"{'metrics' if has_metric else 'params'}.{column}"
            chosen.append(column)
        return chosen
    referenced = _references(args.filter, *args.order_by)
    if referenced:
        return referenced
    metrics = sorted({key for run in runs for key in run.get("metrics", {})})
    params = sorted({key for run in runs for key in run.get("params", {})})
    return [f"params.{key}" for key in params[:DEFAULT_COLUMNS]] + [
        f"metrics.{key}" for key in metrics[:DEFAULT_COLUMNS]
    ]


def runs_show(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        run = _run(client, args.run)
        files = client.get(f"/api/v1/runs/{quote(run['run_id'], safe='')}/artifacts")["files"]
    if args.json:
        print_json({**run, "artifacts": files})
        return 0
    job = run.get("job")
    source = f"job {job['name']} (id {job['id']})" if job else run["source"]
    print_table(
        ["field", "value"],
        [
            ["run", f"{run['run_id']}  {run['name']}"],
            ["experiment", f"{run['experiment']} (id {run['experiment_id']}, team {run['team']})"],
            ["status", run["status"] + ("" if run["lifecycle"] == "active" else " (deleted)")],
            ["started", _time(run["start_time"])],
            ["ended", _time(run["end_time"])],
            ["duration", _duration(run)],
            ["source", source],
            ["user", run["user"]],
            ["artifacts", run["artifact_uri"]],
        ],
    )
    print()
    print_table(["param", "value"], sorted(run["params"].items()), empty="(no params)")
    print()
    print_table(
        ["metric", "latest", "step", "min", "max", "points"],
        [
            [
                key,
                _number(m["value"]),
                m["step"],
                _number(m["min"]),
                _number(m["max"]),
                m["count"],
            ]
            for key, m in sorted(run["metrics"].items())
        ],
        empty="(no metrics)",
    )
    print()
    print_table(["tag", "value"], sorted(run["tags"].items()), empty="(no tags)")
    print()
    print_table(
        ["artifact", "size"],
        [[f["path"] + ("/" if f["is_dir"] else ""), f["size"]] for f in files],
        empty="(no artifacts)",
    )
    return 0


@dataclass(frozen=True)
class Compared:
    """One row of a comparison: a field, each run's value, and whether they differ (a value
    one run lacks counts as a difference)."""

    field: str
    values: list[Any]
    differs: bool


def runs_compare(args: argparse.Namespace) -> int:
    if len(set(args.runs)) < 2:
        raise CliError("give at least two different runs to compare")
    with ApiClient.from_env() as client:
        runs = [_run(client, run_id) for run_id in dict.fromkeys(args.runs)]
    fields: list[tuple[str, list[Any]]] = [
        ("name", [run["name"] for run in runs]),
        ("experiment", [run["experiment"] for run in runs]),
        ("status", [run["status"] for run in runs]),
        ("started", [_time(run["start_time"]) for run in runs]),
        ("duration", [_duration(run) for run in runs]),
        ("source", [run["job"]["name"] if run.get("job") else run["source"] for run in runs]),
    ]
    kinds = ["params", "metrics"] + (["tags"] if args.tags else [])
    for kind in kinds:
        keys = sorted({key for run in runs for key in run.get(kind, {})})
        fields += [
            (f"{kind}.{key}", [_value(run, f"{kind}.{key}") for run in runs]) for key in keys
        ]
    compared = [
        Compared(name, values, len({repr(v) for v in values}) > 1) for name, values in fields
    ]
    if args.json:
        print_json(
            {"runs": [run["run_id"] for run in runs], "fields": [asdict(c) for c in compared]}
        )
        return 0
    shown = [c for c in compared if c.differs or not args.diff_only]
    print_table(
        ["", "field", *(f"run {index}" for index in range(1, len(runs) + 1))],
        [
            [SAME, "run id", *(run["run_id"] for run in runs)],
            *([DIFFERS if c.differs else SAME, c.field, *c.values] for c in shown),
        ],
    )
    return 0


# --- wiring ------------------------------------------------------------------------------


def _add_team(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", metavar="SLUG", help="the team (default: your default team)")


def _add_view(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--view",
        choices=list(VIEWS),
        default="active",
        help="active (default), deleted (restorable until purged) or all",
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    experiments_parser = commands.add_parser(
        "experiments", help="experiment tracking: list experiments (client command)"
    )
    sub = experiments_parser.add_subparsers(
        dest="experiments_command", metavar="COMMAND", required=True
    )
    parser = sub.add_parser("list", help="the team's experiments")
    _add_team(parser)
    _add_view(parser)
    parser.add_argument(
        "--limit", type=positive, default=EXPERIMENT_LIMIT, metavar="N", help="at most N"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=experiments_list)

    runs_parser = commands.add_parser(
        "runs", help="experiment tracking: search, show and compare runs (client command)"
    )
    sub = runs_parser.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    parser = sub.add_parser(
        "list",
        help="an experiment's runs, filtered and ordered",
        description="Search an experiment's runs with MLflow's syntax, e.g. "
        '--filter "params.lr = \'0.1\' AND metrics.acc > 0.9" --order-by "metrics.acc DESC".',
    )
    parser.add_argument("experiment", metavar="EXPERIMENT", help="its name (or numeric id)")
    parser.add_argument("--filter", default="", metavar="EXPR", help="a search expression")
    parser.add_argument(
        "--order-by",
        action="append",
        default=[],
        metavar="ORDER",
        help="`metrics.acc DESC`, `params.lr`, `attributes.start_time ASC` (repeatable)",
    )
    parser.add_argument(
        "--max", type=positive, default=100, metavar="N", help="at most N runs (default 100)"
    )
    parser.add_argument(
        "--columns",
        metavar="COLS",
        help="comma-separated columns: params.lr,metrics.acc,tags.stage (default: those the "
        "filter and ordering mention, else a few params and metrics)",
    )
    _add_team(parser)
    _add_view(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=runs_list)

    parser = sub.add_parser("show", help="one run: params, metrics, tags, artifacts")
    parser.add_argument("run", metavar="RUN", help="the run id (32 hex digits)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=runs_show)

    parser = sub.add_parser(
        "compare",
        help="runs side by side: params and latest metrics, differences marked *",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids")
    parser.add_argument("--diff-only", action="store_true", help="only the rows that differ")
    parser.add_argument("--tags", action="store_true", help="compare tags too")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(func=runs_compare)
