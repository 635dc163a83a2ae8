"""`studiolo models ...`: the model registry from the command line (client commands: they use
the REST API only). Groups, registering a job's model or an external artifact, listing,
describing, and the approval decisions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from studio.cli.client import ApiClient
from studio.cli.common import CliError, positive
from studio.cli.output import print_json, print_table

GROUP_LIMIT = 10_000


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _package_ref(raw: str) -> tuple[str, int]:
    """GROUP/VERSION, e.g. churn/3."""
    group, sep, version = raw.rpartition("/")
    if not sep or not group or not version.isdigit():
        raise argparse.ArgumentTypeError(f"expected GROUP/VERSION like churn/3, got {raw!r}")
    return group, int(version)


def _team(client: ApiClient, team: str | None) -> str:
    """--team, else the user's only team, or the first one listed by /api/v1/me (said on stderr)."""
    if team:
        return team
    teams = client.get("/api/v1/me").get("teams", [])
    if not teams:
        raise CliError("you are not a member of any team")
    slug = str(teams[0]["slug"])
    if len(teams) > 1:
        _note(f"Team: {slug} (of {len(teams)}; choose with --team)")
    return slug


def _groups_url(team: str) -> str:
    return f"/api/v1/teams/{quote(team)}/model-groups"


def _package_url(team: str, group: str, version: int) -> str:
    return f"{_groups_url(team)}/{quote(group)}/packages/{version}"


def _short_time(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else "-"


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) or "-"


def _votes_text(package: dict[str, Any]) -> str:
    return f"{package['approvals']} of {package['approvals_required']} approvals"


def _round_text(package: dict[str, Any]) -> str:
    return " that decided it" if package.get("votes_decided") else " in this round"


# --- commands ----------------------------------------------------------------------------


def create_group(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        team = _team(client, args.team)
        body = {
            "name": args.name,
            "description": args.description,
            "approvals_required": args.approvals,
        }
        group = client.post(_groups_url(team), body)
    if args.json:
        print_json(group)
    else:
        _note(
            f"Created model group {group['name']} in team {group['team']} "
            f"({group['approvals_required']} approval(s) required)"
        )
    return 0


def package_register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"entry_point": args.entry_point, "description": args.description}
    if args.image:
        body["image"] = args.image
    else:
        body["framework"] = args.framework
    if args.from_job:
        if args.metrics_file:
            raise CliError("--metrics-file goes with --artifact; a job's run has its metrics")
        body["job"] = args.from_job
    else:
        body["artifact_uri"] = args.artifact
        if args.metrics_file:
            body["metrics"] = _read_metrics(Path(args.metrics_file))
    with ApiClient.from_env() as client:
        team = _team(client, args.team)
        package = client.post(f"{_groups_url(team)}/{quote(args.group)}/packages", body)
    if args.json:
        print_json(package)
    else:
        _note(
            f"Registered {package['group']}/{package['version']} "
            f"({package['approval_status']}; team {package['team']})"
        )
        print(f"{package['group']}/{package['version']}", flush=True)
    return 0


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"--metrics-file: cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CliError(f"--metrics-file: {path} is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CliError(f"--metrics-file: {path} must hold an object of name -> number")
    return data


def models_list(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        team = _team(client, args.team)
        if args.group:
            group = client.get(f"{_groups_url(team)}/{quote(args.group)}")
        else:
            groups = client.paginate(_groups_url(team), limit=GROUP_LIMIT)
    if not args.group:
        if args.json:
            print_json(groups)
            return 0
        print_table(
            ["group", "versions", "approved", "latest", "latest status", "approvals needed"],
            [
                [
                    g["name"],
                    g["package_count"],
                    g["approved_count"],
                    g["latest_version"],
                    g["latest_status"],
                    g["approvals_required"],
                ]
                for g in groups
            ],
            empty="(no model groups)",
        )
        return 0
    if args.json:
        print_json(group["packages"])
        return 0
    names = sorted({key for p in group["packages"] for key in p["metrics"]})
    print_table(
        ["version", "status", "votes", "created by", "created", *names],
        [
            [
                p["version"],
                p["approval_status"],
                _votes_text(p),
                p["created_by"],
                _short_time(p["created_at"]),
                *(None if p["metrics"].get(n) is None else f"{p['metrics'][n]:.4g}" for n in names),
            ]
            for p in group["packages"]
        ],
        empty=f"(no versions in {group['name']})",
    )
    return 0


def describe(args: argparse.Namespace) -> int:
    group, version = args.package
    with ApiClient.from_env() as client:
        team = _team(client, args.team)
        package = client.get(_package_url(team, group, version))
    if args.json:
        print_json(package)
        return 0
    lineage = package["lineage"]
    job = lineage["job"]
    image = package["image"] + (
        f"  (framework {package['framework']})" if package["framework"] else ""
    )
    rows = [
        ("Package", f"{package['group']}/{package['version']}  (team {package['team']})"),
        ("Status", f"{package['approval_status']}  ({_votes_text(package)}{_round_text(package)})"),
        ("Description", package["description"] or "-"),
        ("Created", f"{_short_time(package['created_at'])} by {package['created_by'] or '-'}"),
        ("Image", image),
        ("Entry point", package["entry_point"] or "-"),
        ("Artifact", package["artifact_uri"]),
        (
            "Artifact sha256",
            f"{package['artifact_sha256']}  ({package['artifact_size']} bytes)"
            if package["artifact_sha256"]
            else "- (not pinned: cannot be deployed)",
        ),
        ("Metrics", _metrics_text(package["metrics"])),
        ("Source", "external artifact" if package["external"] else "training job"),
    ]
    if job is not None:
        rows += [
            ("Job", f"{job['name']}  (id {job['id']})"),
            ("Run", str(lineage["run_id"]) if lineage["run_id"] else "-"),
            ("Training image", lineage["training_image"] or "-"),
            ("Image digest", lineage["image_digest"] or "-"),
            (
                "Hyperparameters",
                ", ".join(f"{k}={v}" for k, v in lineage["hyperparameters"].items()) or "-",
            ),
        ]
        rows += [(f"Input {c['name']}", c["uri"]) for c in lineage["input_data"]]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label + ':':<{width}}{value}")
    print()
    print_table(
        ["time", "from", "to", "actor", "comment"],
        [
            [_short_time(t["at"]), t["from_status"], t["to_status"], t["actor"], t["comment"]]
            for t in package["transitions"]
        ],
        empty="(no history)",
    )
    if package["votes"]:
        print()
        print_table(
            ["time", "vote", "actor", "comment"],
            [
                [_short_time(v["at"]), v["decision"], v["actor"], v["comment"]]
                for v in package["votes"]
            ],
        )
    return 0


def _decide(args: argparse.Namespace, decision: str) -> int:
    group, version = args.package
    with ApiClient.from_env() as client:
        team = _team(client, args.team)
        result = client.post(
            f"{_package_url(team, group, version)}/{decision}", {"comment": args.comment}
        )
    if args.json:
        print_json(result)
        return 0
    package = result["package"]
    if result["changed"]:
        _note(f"{package['group']}/{package['version']} is now {package['approval_status']}")
    else:
        _note(
            f"Vote recorded: {package['group']}/{package['version']} has "
            f"{result['approvals']} of {result['required']} approvals; "
            f"it stays {package['approval_status']}"
        )
    return 0


def approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def reject(args: argparse.Namespace) -> int:
    return _decide(args, "reject")


# --- wiring ------------------------------------------------------------------------------


def _add_team(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--team", metavar="SLUG", help="the team (default: your only or first team)"
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models_parser = commands.add_parser(
        "models", help="the model registry: groups, versions, approvals (client command)"
    )
    sub = models_parser.add_subparsers(dest="models_command", metavar="COMMAND", required=True)

    parser = sub.add_parser("create-group", help="create a model package group")
    parser.add_argument("name", metavar="NAME", help="letters, digits and hyphens (1-63)")
    parser.add_argument(
        "--approvals",
        type=positive,
        default=1,
        metavar="N",
        help="distinct approvals a version needs (default 1)",
    )
    parser.add_argument("--description", default="", help="what the models of the group do")
    _add_team(parser)
    parser.add_argument("--json", action="store_true", help="print the group as JSON")
    parser.set_defaults(func=create_group)

    parser = sub.add_parser(
        "register",
        help="register a new version: a completed job's model, or an external model.tar.gz",
        description="Register a model package. Prints GROUP/VERSION on stdout.",
    )
    parser.add_argument("--group", required=True, metavar="GROUP", help="the model group")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-job", metavar="JOB", help="a Completed job's name or id")
    source.add_argument("--artifact", metavar="URI", help="a model.tar.gz in the artifact store")
    parser.add_argument(
        "--metrics-file",
        metavar="FILE",
        help="with --artifact: a JSON evaluation report {name: number}",
    )
    image = parser.add_mutually_exclusive_group()
    image.add_argument(
        "--framework", default="sklearn", help="serve with this framework's image (sklearn)"
    )
    image.add_argument("--image", help="serve with this inference image instead")
    parser.add_argument(
        "--entry-point", default="", metavar="FILE", help="the inference script (inference.py)"
    )
    parser.add_argument("--description", default="", help="what changed in this version")
    _add_team(parser)
    parser.add_argument("--json", action="store_true", help="print the package as JSON")
    parser.set_defaults(func=package_register)

    parser = sub.add_parser(
        "list", help="model groups, or the versions of one group with status and metrics"
    )
    parser.add_argument("group", nargs="?", metavar="GROUP", help="list this group's versions")
    _add_team(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=models_list)

    parser = sub.add_parser("describe", help="a version: lineage, metrics, approval history")
    parser.add_argument("package", type=_package_ref, metavar="GROUP/VERSION")
    _add_team(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=describe)

    for name, func, verb in (("approve", approve, "approve"), ("reject", reject, "reject")):
        parser = sub.add_parser(name, help=f"{verb} a version, with the reason")
        parser.add_argument("package", type=_package_ref, metavar="GROUP/VERSION")
        parser.add_argument("--comment", required=True, help="why (shown to the team)")
        _add_team(parser)
        parser.add_argument("--json", action="store_true", help="print the API's answer")
        parser.set_defaults(func=func)
