"""`studiolo train` and `studiolo jobs ...`: training jobs from the command line (client
commands: they use the REST API, the artifact upload API and the job log websocket).

`train` works like the SageMaker SDK's `Estimator.fit`: it packs the source folder, uploads
it and any local input data, submits the job and, with `--wait`, follows it to the end.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.cli.common import CliError, positive
from studio.cli.job_follow import (
    STATUSES,
    Follower,
    Printer,
    duration,
    is_terminal,
    summary,
    wait_quietly,
)
from studio.cli.job_transfer import (
    JobClient,
    check_entry_point,
    check_job_name,
    default_job_name,
    note,
    parse_inputs,
    upload_input,
    upload_source,
)
from studio.cli.output import print_json, print_table

DEFAULT_INSTANCE_TYPE = "ml.local.small"  # the smallest of the default INSTANCE_TYPES
# S3DataDistributionType of an input channel (jobs.contract; the CLI does not load Django).
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
HOST_NAME = re.compile(r"^algo-[1-9][0-9]*$")  # the instances of a job: algo-1 ... algo-N
INTERRUPTED = 130
NAME_LOOKUP_LIMIT = 10_000  # `?name=` matches substrings: read enough to find the exact one


# --- argument types ------------------------------------------------------------------------


def pair(flag: str, what: str) -> Callable[[str], tuple[str, str]]:
    def parse(raw: str) -> tuple[str, str]:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected {what}, got {raw!r}")
        return key, value

    parse.__name__ = flag  # argparse names the type in its error message
    return parse


def _distribution(raw: str) -> tuple[str, str]:
    """`CHANNEL=ShardedByS3Key` (or FullyReplicated), the value in any case."""
    channel, sep, value = raw.partition("=")
    for distribution in DISTRIBUTIONS:
        if sep and channel and value.lower() == distribution.lower():
            return channel, distribution
    raise argparse.ArgumentTypeError(
        f"expected CHANNEL={' or CHANNEL='.join(DISTRIBUTIONS)}, got {raw!r}"
    )


_distribution.__name__ = "--distribution"


def _host(raw: str) -> str:
    if not HOST_NAME.match(raw):
        raise argparse.ArgumentTypeError(f"expected a host name such as algo-2, got {raw!r}")
    return raw


_host.__name__ = "--host"


def _status(raw: str) -> str:
    """A status as the API spells it, from any case (`inprogress`, `in-progress`)."""
    wanted = raw.replace("-", "").replace("_", "").lower()
    for status in STATUSES:
        if status.lower() == wanted:
            return status
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(STATUSES)}, got {raw!r}")


# --- helpers ---------------------------------------------------------------------------------


def team_default(client: JobClient) -> str:
    """The user's only team, or the first one listed by /api/v1/me (said on stderr)."""
    teams = client.get("/api/v1/me").get("teams", [])
    if not teams:
        raise CliError("you are not a member of any team")
    slug = str(teams[0]["slug"])
    if len(teams) > 1:
        note(f"Team: {slug} (of {len(teams)}; choose with --team)")
    return slug


def jobs_named(client: JobClient, name: str, team: str | None) -> list[dict[str, Any]]:
    found = client.paginate("/api/v1/jobs", {"name": name, "team": team}, limit=NAME_LOOKUP_LIMIT)
    return [job for job in found if job["name"] == name]


def job_resolve(client: JobClient, ref: str, team: str | None) -> int:
    """The id behind NAME_OR_ID: digits are an id, anything else an exact job name."""
    if ref.isdigit():
        return int(ref)
    matches = jobs_named(client, ref, team)
    if not matches:
        where = f" in team {team}" if team else ""
        raise CliError(f"no job named {ref!r}{where}")
    if len(matches) > 1:
        teams = ", ".join(sorted(str(job["team"]) for job in matches))
        raise CliError(f"jobs named {ref!r} exist in teams {teams}: choose one with --team")
    return int(matches[0]["id"])


def _short_time(iso: str | None) -> str:
    """2025-01-31T12:34:56.789012Z -> 2025-01-31 12:34:56 (the API answers in UTC)."""
    return iso.replace("T", " ")[:19] if iso else "-"


def _follow_to_end(
    client: JobClient, job: dict[str, Any], *, json_out: bool, host: str | None = None
) -> int:
    """Show the job's lines and status until it ends; Ctrl-C detaches, the job runs on."""
    printer = Printer.for_job(job, stdout_to_stderr=json_out, host=host)
    try:
        Follower(client, int(job["id"]), printer=printer).run()
        final = client.get(f"/api/v1/jobs/{job['id']}")
    except KeyboardInterrupt:
        note(
            f"\nDetached: job {job['name']} keeps running. Follow it again with: "
            f"studiolo jobs logs {job['name']} --follow"
        )
        return INTERRUPTED
    code = summary(final)
    if json_out:
        print_json(final)
    return code


# --- train -----------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> int:
    source_dir = Path(args.source_dir).expanduser()
    # Everything that can be checked locally is checked before the first upload.
    check_entry_point(source_dir, args.entry_point)
    inputs = parse_inputs(args.input or [])
    distributions = dict(args.distribution or [])
    unknown = sorted(set(distributions) - {spec.channel for spec in inputs})
    if unknown:
        raise CliError(f"--distribution {unknown[0]}=...: no --input {unknown[0]}=...", code=2)
    name = args.name or default_job_name(args.entry_point)
    check_job_name(name)
    if args.checkpoint_local_path and not args.checkpoint_uri:
        raise CliError("--checkpoint-local-path needs --checkpoint-uri", code=2)
    with JobClient.from_env() as client:
        team = args.team or team_default(client)
        # The source is uploaded under the job's name: never overwrite an existing job's.
        if jobs_named(client, name, team):
            raise CliError(f"a job named {name!r} exists already in team {team} (see --name)")
        source_uri = upload_source(client, source_dir, team=team, job_name=name)
        channels = [
            {
                "name": spec.channel,
                "uri": upload_input(client, spec, team=team, job_name=name),
                "distribution": distributions.get(spec.channel, DISTRIBUTIONS[0]),
            }
            for spec in inputs
        ]
        body: dict[str, Any] = {
            "name": name,
            "team": team,
            "instance_type": args.instance_type,
            "instance_count": args.instance_count,
            "entry_point": args.entry_point,
            "source_uri": source_uri,
            # Strings exactly as typed, as raw boto3 callers send them; the toolkit in the
            # container decodes the ones that are valid JSON.
            "hyperparameters": dict(args.hp or []),
            "input_channels": channels,
            "metric_definitions": [
                {"name": metric, "regex": regex} for metric, regex in args.metric or []
            ],
            "environment": dict(args.env or []),
        }
        if args.image:
            body["image"] = args.image
        else:
            body["framework"] = args.framework
        optional = {
            "output_path": args.output_path,
            "max_runtime_seconds": args.max_runtime,
            "experiment": args.experiment,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if args.checkpoint_uri:
            body["checkpoint_config"] = {
                "s3_uri": args.checkpoint_uri,
                **(
                    {"local_path": args.checkpoint_local_path} if args.checkpoint_local_path else {}
                ),
            }
        job = client.create_once("/api/v1/jobs", body)
        if not args.wait:
            if args.json:
                print_json(job)
            else:
                note(f"Submitted job {job['name']} (id {job['id']}, team {job['team']})")
                print(job["name"], flush=True)
            return 0
        note(f"Submitted job {job['name']} (id {job['id']}, team {job['team']}); following it")
        return _follow_to_end(client, job, json_out=args.json)


# --- jobs list / describe / logs / stop -----------------------------------------------------


def jobs_list(args: argparse.Namespace) -> int:
    params = {"status": args.status, "team": args.team, "kind": args.kind}
    with JobClient.from_env() as client:
        jobs = client.paginate("/api/v1/jobs", params, limit=args.limit)
    if args.json:
        print_json(jobs)
        return 0
    print_table(
        ["name", "team", "status", "secondary", "instance type", "created", "duration", "kind"],
        [
            [
                job["name"],
                job["team"],
                job["status"],
                job["secondary_status"],
                job["instance_type"],
                _short_time(job["created_at"]),
                duration(job["created_at"], job["ended_at"]),
                job["kind"],
            ]
            for job in jobs
        ],
        empty="(no jobs)",
    )
    return 0


def _pairs_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "-"


def _describe_rows(job: dict[str, Any], base_url: str) -> list[tuple[str, str]]:
    image = job["image"] + (f"  (framework {job['framework']})" if job["framework"] else "")
    state = job["status"] + (
        f" / {job['secondary_status']}" if job["secondary_status"] != job["status"] else ""
    )
    rows = [
        ("Name", f"{job['name']}  (id {job['id']}, team {job['team']})"),
        ("Status", state),
        ("Message", job["status_message"] or "-"),
    ]
    if job["failure_reason"]:
        rows.append(("Failure reason", job["failure_reason"]))
    if job.get("kind") == "transform":
        return rows + _transform_rows(job)
    if job.get("kind") == "processing":
        rows += _processing_rows(job)
    rows += [
        ("Image", image),
        ("Entry point", job["entry_point"] or "-"),
        ("Source", job["source_uri"] or "-"),
        ("Hyperparameters", _pairs_text(job["hyperparameters"])),
        ("Environment", _pairs_text(job["environment"])),
    ]
    if job.get("kind") != "processing":
        rows += [
            (f"Input {c['name']}", c["uri"] + _distribution_text(c)) for c in job["input_channels"]
        ] or [("Inputs", "-")]
    rows += [(f"Metric {m['name']}", m["regex"]) for m in job["metric_definitions"]]
    if job["container_entrypoint"] is not None:
        rows.append(("Container entrypoint", " ".join(job["container_entrypoint"])))
    if job["container_arguments"] is not None:
        rows.append(("Container arguments", " ".join(job["container_arguments"])))
    rows += [
        ("Output path", job["output_path"]),
        *_checkpoint_rows(job.get("checkpoint") or {}),
        ("Instances", f"{job['instance_count']} x {job['instance_type']}"),
        ("Max runtime", f"{job['max_runtime_seconds']} s"),
        ("Network", "enabled" if job["enable_network"] else "disabled"),
        ("Created", f"{_short_time(job['created_at'])} by {job['created_by'] or '-'}"),
        ("Training", _training_text(job)),
        ("Ended", _short_time(job["ended_at"])),
        ("Duration", duration(job["created_at"], job["ended_at"]) or "-"),
        ("Exit code", "-" if job["exit_code"] is None else str(job["exit_code"])),
        ("Log lines", str(job["log_line_count"])),
        ("Model artifacts", job["model_artifact_uri"] or "-"),
        ("Output artifacts", job["output_artifact_uri"] or "-"),
    ]
    rows += [
        (f"Download {what}", base_url + link) for what, link in job.get("downloads", {}).items()
    ]
    return rows


def _checkpoint_rows(checkpoint: dict[str, str]) -> list[tuple[str, str]]:
    if not checkpoint:
        return [("Checkpoints", "-")]
    return [("Checkpoints", f"{checkpoint['uri']}  (synced from {checkpoint['local_path']})")]


def _distribution_text(channel: dict[str, Any]) -> str:
    distribution = channel.get("distribution") or DISTRIBUTIONS[0]
    return "" if distribution == DISTRIBUTIONS[0] else f"  ({distribution})"


def _transform_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    settings, progress = job["transform"], job["progress"]
    used = settings.get("effective", {})

    def setting(key: str, default: str = "-") -> str:
        value = used.get(key) or settings.get(key)
        origin = "" if settings.get(key) or key not in used else "  (from the container)"
        return f"{value}{origin}" if value else default

    return [
        ("Kind", "batch transform"),
        ("Model", f"{settings['model']}  ({settings['model_artifact_uri']})"),
        ("Image", job["image"]),
        ("Input", settings["input_uri"]),
        ("Content type", settings["content_type"] or "-"),
        ("Split type", settings["split_type"]),
        ("Batch strategy", setting("batch_strategy")),
        ("Max payload", f"{setting('max_payload_mb', '6')} MB"),
        ("Max concurrent", setting("max_concurrent_transforms", "1")),
        ("Accept", settings["accept"] or "-"),
        ("Assemble with", settings["assemble_with"]),
        ("Environment", _pairs_text(job["environment"])),
        ("Output path", job["output_path"]),
        (
            "Progress",
            f"{progress['records_done']}/{progress['records_total']} records, "
            f"{progress['files_done']}/{progress['files_total']} files",
        ),
        ("Instances", f"{job['instance_count']} x {job['instance_type']}"),
        ("Max runtime", f"{job['max_runtime_seconds']} s"),
        ("Created", f"{_short_time(job['created_at'])} by {job['created_by'] or '-'}"),
        ("Transforming", _training_text(job)),
        ("Ended", _short_time(job["ended_at"])),
        ("Duration", duration(job["created_at"], job["ended_at"]) or "-"),
        ("Log lines", str(job["log_line_count"])),
    ]


def _processing_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    """Every input and output of a processing job, each with its URI and local path."""
    settings = job["processing"]
    rows = [("Kind", f"processing on {job['instance_count']} instance(s)")]
    rows += [
        (
            f"Input {item['name']}",
            f"{item['uri']} → {item['local_path']}"
            + ("  (sharded)" if item["distribution"] == "ShardedByS3Key" else ""),
        )
        for item in settings.get("inputs", [])
    ] or [("Inputs", "-")]
    rows += [
        (
            f"Output {item['name']}",
            f"{item['local_path']} → {item['uri']}"
            + ("  (continuous)" if item["upload_mode"] == "Continuous" else ""),
        )
        for item in settings.get("outputs", [])
    ] or [("Outputs", "-")]
    if settings.get("exit_message"):
        rows.append(("Exit message", settings["exit_message"]))
    return rows


def _training_text(job: dict[str, Any]) -> str:
    if not job["training_started_at"]:
        return "-"
    span = duration(job["training_started_at"], job["training_ended_at"])
    end = _short_time(job["training_ended_at"]) if job["training_ended_at"] else "..."
    return f"{_short_time(job['training_started_at'])} - {end}  ({span})"


def jobs_describe(args: argparse.Namespace) -> int:
    with JobClient.from_env() as client:
        job = client.get(f"/api/v1/jobs/{job_resolve(client, args.job, args.team)}")
    if args.json:
        print_json(job)
        return 0
    rows = _describe_rows(job, client.base_url)
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label + ':':<{width}}{value}")
    print()
    print_table(
        ["time", "status", "secondary", "actor", "message"],
        [
            [_short_time(t["at"]), t["status"], t["secondary_status"], t["actor"], t["message"]]
            for t in job["transitions"]
        ],
        empty="(no transitions)",
    )
    return 0


def jobs_logs(args: argparse.Namespace) -> int:
    with JobClient.from_env() as client:
        job = client.get(f"/api/v1/jobs/{job_resolve(client, args.job, args.team)}")
        if args.follow:
            return _follow_to_end(client, job, json_out=False, host=args.host)
        Follower(
            client, int(job["id"]), printer=Printer.for_job(job, host=args.host)
        ).read_available()
    return 0


def jobs_stop(args: argparse.Namespace) -> int:
    with JobClient.from_env() as client:
        job = client.post(f"/api/v1/jobs/{job_resolve(client, args.job, args.team)}/stop")
        note(f"Job {job['name']}: {job['status']}")
        if not args.wait or is_terminal(job["status"]):
            return 0
        try:
            wait_quietly(client, int(job["id"]), printer=Printer())
            final = client.get(f"/api/v1/jobs/{job['id']}")
        except KeyboardInterrupt:
            note(f"\nStopped waiting; job {job['name']} is still stopping")
            return INTERRUPTED
    summary(final)
    return 0 if final["status"] == "Stopped" else 1


# --- wiring ----------------------------------------------------------------------------------


def _add_job_ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="NAME_OR_ID", help="the job's name, or its numeric id")
    parser.add_argument("--team", help="the job's team, when its name exists in several")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "train",
        help="pack a source folder, upload it and local inputs, submit a training job "
        "(client command)",
        description="Submit a script-mode training job, like the SageMaker SDK's "
        "Estimator.fit. Prints the job name on stdout (notes go to stderr).",
    )
    image = parser.add_mutually_exclusive_group(required=True)
    image.add_argument("--framework", help="run the script in this framework's image (sklearn)")
    image.add_argument("--image", help="run the script in this image instead of a framework's")
    parser.add_argument(
        "--entry-point",
        required=True,
        metavar="FILE",
        help="the script to run, relative to --source-dir",
    )
    parser.add_argument(
        "--source-dir",
        required=True,
        metavar="DIR",
        help="folder packed as sourcedir.tar.gz and uploaded",
    )
    parser.add_argument(
        "--name", help="job name (default: <entry point>-<UTC time to the millisecond>)"
    )
    parser.add_argument(
        "--hp",
        action="append",
        type=pair("--hp", "KEY=VALUE"),
        metavar="KEY=VALUE",
        help="a hyperparameter, passed as the string typed (repeat)",
    )
    parser.add_argument(
        "--input",
        action="append",
        type=pair("--input", "CHANNEL=URI_OR_PATH"),
        metavar="CHANNEL=URI_OR_PATH",
        help="an input channel: a URI, or a local file or folder to upload (repeat)",
    )
    parser.add_argument(
        "--distribution",
        action="append",
        type=_distribution,
        metavar="CHANNEL=ShardedByS3Key",
        help="split the channel's objects between the instances (default FullyReplicated: "
        "each instance gets all of them) (repeat)",
    )
    parser.add_argument(
        "--instance-type",
        default=DEFAULT_INSTANCE_TYPE,
        metavar="TYPE",
        help=f"instance type (default {DEFAULT_INSTANCE_TYPE})",
    )
    parser.add_argument(
        "--instance-count",
        type=positive,
        default=1,
        metavar="N",
        help="instances algo-1 ... algo-N, on a network of the job's own (default 1; at most "
        "the instance type's max_count)",
    )
    parser.add_argument(
        "--metric",
        action="append",
        type=pair("--metric", "NAME=REGEX"),
        metavar="NAME=REGEX",
        help="a metric read from the log; the regex captures the value (repeat)",
    )
    parser.add_argument(
        "--max-runtime", type=positive, metavar="SECONDS", help="stop the job after this long"
    )
    parser.add_argument(
        "--env",
        action="append",
        type=pair("--env", "KEY=VALUE"),
        metavar="KEY=VALUE",
        help="an environment variable of the container (repeat)",
    )
    parser.add_argument("--output-path", metavar="URI", help="where the model archive goes (a URI)")
    parser.add_argument("--experiment", metavar="NAME", help="the experiment of the job's run")
    parser.add_argument(
        "--checkpoint-uri",
        metavar="URI",
        help="keep the job's checkpoints in this folder of the store: restored into the "
        "container at start, synced from it while the job runs (CheckpointConfig.S3Uri)",
    )
    parser.add_argument(
        "--checkpoint-local-path",
        metavar="PATH",
        help="the container's checkpoint folder, under /opt/ml "
        "(default /opt/ml/checkpoints; needs --checkpoint-uri)",
    )
    parser.add_argument(
        "--team", metavar="SLUG", help="the team to run in (default: your only or first team)"
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the job to its end; exit 0 Completed, 1 Failed, 3 Stopped",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the job as JSON (at the end with --wait)"
    )
    parser.set_defaults(func=train)

    jobs_parser = commands.add_parser("jobs", help="list, describe, follow and stop jobs")
    jobs_commands = jobs_parser.add_subparsers(
        dest="jobs_command", metavar="COMMAND", required=True
    )

    parser = jobs_commands.add_parser("list", help="jobs you may see, newest first")
    parser.add_argument("--status", type=_status, help=f"only this status ({', '.join(STATUSES)})")
    parser.add_argument("--team", help="only jobs of this team")
    parser.add_argument(
        "--kind", choices=("training", "transform", "processing"), help="only jobs of this kind"
    )
    parser.add_argument("--limit", type=positive, default=50, help="at most N jobs (default 50)")
    parser.add_argument("--json", action="store_true", help="print the jobs as JSON")
    parser.set_defaults(func=jobs_list)

    parser = jobs_commands.add_parser("describe", help="a job's configuration, status and history")
    _add_job_ref(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.set_defaults(func=jobs_describe)

    parser = jobs_commands.add_parser("logs", help="what a job printed")
    _add_job_ref(parser)
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep printing until the job ends; exit 0 Completed, 1 Failed, 3 Stopped",
    )
    parser.add_argument(
        "--host",
        type=_host,
        metavar="HOST",
        help="only the lines of this instance (algo-2) and the platform's own",
    )
    parser.set_defaults(func=jobs_logs)

    parser = jobs_commands.add_parser("stop", help="stop a job")
    _add_job_ref(parser)
    parser.add_argument("--wait", action="store_true", help="wait until it has stopped")
    parser.set_defaults(func=jobs_stop)
