"""`studiolo transform`: a batch transform job from the command line (a client command: the
REST API, the artifact upload API and the job log websocket).

Like the SageMaker SDK's `Transformer.transform`: the model's serving container transforms
every object below the input prefix; a local input folder is uploaded first. With `--wait`
the job is followed to its end, its log and its progress (records done / total) shown.
Describing, following and stopping it afterwards is `studiolo jobs describe|logs|stop`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from studio.cli.common import CliError, positive
from studio.cli.job_follow import Follower, Printer, summary
from studio.cli.job_transfer import JobClient, check_job_name, note, parse_inputs, upload_input
from studio.cli.jobs import (
    DEFAULT_INSTANCE_TYPE,
    INTERRUPTED,
    jobs_named,
    pair,
    team_default,
)
from studio.cli.output import print_json

PROGRESS_EVERY = 1.0  # seconds between two progress lines of one status
SPLIT_TYPES = ("None", "Line")
STRATEGIES = ("SingleRecord", "MultiRecord")


class ProgressPrinter(Printer):
    """A Printer that also shows a transform's progress message as it changes, at most once
    a second (the status message carries `x/y records, a/b files`)."""

    def __init__(self, *, stdout_to_stderr: bool = False) -> None:
        super().__init__(stdout_to_stderr=stdout_to_stderr)
        self._phase: tuple[str, str] | None = None
        self._message = ""
        self._shown_at = 0.0

    def status(self, status: str, secondary: str, message: str) -> None:
        now = time.monotonic()
        if (status, secondary) != self._phase:
            self._phase = (status, secondary)
            super().status(status, secondary, message)
        elif message and message != self._message and now - self._shown_at >= PROGRESS_EVERY:
            note(f"{secondary} - {message}")
        else:
            return
        self._message, self._shown_at = message, now


def transform(args: argparse.Namespace) -> int:
    name = args.name
    check_job_name(name)
    (spec,) = parse_inputs([("input", args.input)])  # exit 2 on a missing local path
    with JobClient.from_env() as client:
        team = args.team or team_default(client)
        if spec.local is not None and jobs_named(client, name, team):
            # Local input is uploaded under the job's name: never mix two jobs' inputs.
            raise CliError(f"a job named {name!r} exists already in team {team}")
        body: dict[str, Any] = {
            "name": name,
            "team": team,
            "model": args.model,
            "input_uri": upload_input(client, spec, team=team, job_name=name),
            "instance_type": args.instance_type,
            "split_type": args.split_type,
            "environment": dict(args.env or []),
        }
        optional = {
            "output_path": args.output,
            "content_type": args.content_type,
            "accept": args.accept,
            "batch_strategy": args.strategy,
            "max_payload_mb": args.max_payload_mb,
            "max_concurrent_transforms": args.max_concurrent,
            "assemble_with": args.assemble_with,
            "max_runtime_seconds": args.max_runtime,
            "invocations_timeout_seconds": args.invocation_timeout,
            "invocations_max_retries": args.max_retries,
            "experiment": args.experiment,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        job = client.create_once("/api/v1/transform-jobs", body)
        if not args.wait:
            if args.json:
                print_json(job)
            else:
                note(f"Submitted transform job {job['name']} (id {job['id']}, team {job['team']})")
                print(job["name"], flush=True)
            return 0
        note(
            f"Submitted transform job {job['name']} (id {job['id']}, team {job['team']}); "
            "following it"
        )
        try:
            printer = ProgressPrinter(stdout_to_stderr=args.json)
            Follower(client, int(job["id"]), printer=printer).run()
            final = client.get(f"/api/v1/jobs/{job['id']}")
        except KeyboardInterrupt:
            note(
                f"\nDetached: job {job['name']} keeps running. Follow it again with: "
                f"studiolo jobs logs {job['name']} --follow"
            )
            return INTERRUPTED
    code = summary(final)
    if args.json:
        print_json(final)
    return code


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "transform",
        help="run a batch transform job: a model's predictions for every object below an "
        "input prefix (client command)",
        description="Submit a batch transform job, like the SageMaker SDK's "
        "Transformer.transform: the model's serving container answers every record of every "
        "object below --input, and <output>/<path below the input>.out holds the answers. "
        "Prints the job name on stdout (notes go to stderr).",
    )
    parser.add_argument("name", metavar="NAME", help="the job's name")
    parser.add_argument(
        "--model",
        required=True,
        metavar="GROUP/VERSION|MODEL",
        help="an Approved model package (churn/3), or the name of a model made for endpoints",
    )
    parser.add_argument(
        "--input",
        required=True,
        metavar="URI_OR_PATH",
        help="the input prefix (s3://..., file://...), or a local file or folder to upload",
    )
    parser.add_argument(
        "--output",
        metavar="URI",
        help="where the .out objects go (default: teams/<team>/jobs/<name>/output)",
    )
    parser.add_argument("--content-type", metavar="TYPE", help="the records' type, e.g. text/csv")
    parser.add_argument(
        "--split-type",
        choices=SPLIT_TYPES,
        default="None",
        help="Line: every line is a record; None (default): every object is one request",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="with --split-type Line: one record per request, or as many as fit "
        "--max-payload-mb (default: the container's choice, else MultiRecord)",
    )
    parser.add_argument(
        "--max-payload-mb", type=positive, metavar="MB", help="largest request (default 6)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=positive,
        metavar="N",
        help="requests in flight at once (default: the container's choice, else 1)",
    )
    parser.add_argument("--accept", metavar="TYPE", help="the answers' type, e.g. text/csv")
    parser.add_argument(
        "--assemble-with",
        choices=("None", "Line"),
        help="Line: a line break after each answer; None (default): answers concatenated",
    )
    parser.add_argument(
        "--env",
        action="append",
        type=pair("--env", "KEY=VALUE"),
        metavar="KEY=VALUE",
        help="an environment variable of the serving container (repeat)",
    )
    parser.add_argument(
        "--instance-type",
        default=DEFAULT_INSTANCE_TYPE,
        metavar="TYPE",
        help=f"instance type (default {DEFAULT_INSTANCE_TYPE})",
    )
    parser.add_argument(
        "--max-runtime", type=positive, metavar="SECONDS", help="stop the job after this long"
    )
    parser.add_argument(
        "--invocation-timeout",
        type=positive,
        metavar="SECONDS",
        help="how long one request may take (default 600)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        choices=range(4),
        metavar="N",
        help="retries of a request that got no answer or a 5xx (0-3, default 3)",
    )
    parser.add_argument("--experiment", metavar="NAME", help="the experiment of the job's run")
    parser.add_argument(
        "--team", metavar="SLUG", help="the team to run in (default: your only or first team)"
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the job and its progress to the end; exit 0 Completed, 1 Failed, 3 Stopped",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the job as JSON (at the end with --wait)"
    )
    parser.set_defaults(func=transform)
