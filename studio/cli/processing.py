"""`studiolo process`: a processing job from the command line (a client command: the REST
API, the artifact upload API and the job log websocket).

Like the SageMaker SDK's SKLearnProcessor / ScriptProcessor: `--framework sklearn --code
preprocess.py` uploads the script and runs it unchanged in the framework's image, from
/opt/ml/processing/input/code/; `--image IMG [--entrypoint ...]` runs an image's own
program. Local inputs are uploaded first (as `studiolo train` uploads channels); outputs go
to the team's area of the store unless a URI is given. With `--wait` the job is followed to
its end. Describing, following and stopping it afterwards is `studiolo jobs describe|logs|stop`.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.processing_specs import split_input, split_output
from studio.cli.common import CliError, positive
from studio.cli.job_transfer import (
    URI,
    InputSpec,
    JobClient,
    check_job_name,
    default_job_name,
    note,
    parse_inputs,
    upload_input,
)
from studio.cli.jobs import (
    DEFAULT_INSTANCE_TYPE,
    _follow_to_end,
    jobs_named,
    pair,
    team_default,
)
from studio.cli.output import print_json


@dataclass(frozen=True)
class ProcessingInputArg:
    spec: InputSpec  # the source: a URI, or a local file or folder to upload
    local_path: str  # "" for the default /opt/ml/processing/input/<name>
    distribution: str


@dataclass(frozen=True)
class ProcessingOutputArg:
    name: str
    local_path: str
    uri: str  # "" for the team's area
    upload_mode: str


def parse_processing_inputs(pairs: list[tuple[str, str]]) -> list[ProcessingInputArg]:
    """`NAME=SOURCE[:LOCAL_PATH][:sharded|:replicated]`; SOURCE is a local path, an
    artifact URI or an s3:// URI (its own `:` are kept: the local path is the part from the
    last `:/opt/ml/processing/`)."""
    parsed: list[tuple[str, str, str, str]] = []
    for name, value in pairs:
        try:
            source, local_path, distribution = split_input(value)
        except ValueError as exc:
            raise CliError(f"--input {name}={value}: {exc}", code=2) from exc
        parsed.append((name, source, local_path, distribution))
    specs = parse_inputs([(name, source) for name, source, _, _ in parsed])
    return [
        ProcessingInputArg(spec, local_path, distribution)
        for spec, (_, _, local_path, distribution) in zip(specs, parsed, strict=True)
    ]


def parse_processing_outputs(pairs: list[tuple[str, str]]) -> list[ProcessingOutputArg]:
    """`NAME=LOCAL_PATH[:URI][:continuous]`."""
    outputs: list[ProcessingOutputArg] = []
    for name, value in pairs:
        try:
            local_path, uri, mode = split_output(value)
        except ValueError as exc:
            raise CliError(f"--output {name}={value}: {exc}", code=2) from exc
        if uri and not URI.match(uri):
            raise CliError(f"--output {name}={value}: {uri!r} is not a URI (s3://...)", code=2)
        outputs.append(ProcessingOutputArg(name, local_path, uri, mode))
    return outputs


def join_arg_values(argv: Sequence[str]) -> list[str]:
    """`--arg --split=0.2` → `--arg=--split=0.2`: a script's arguments often start with
    `--`, which argparse would take for an option of its own."""
    joined: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--arg":
            value = next(items, None)
            joined.append("--arg" if value is None else f"--arg={value}")
        else:
            joined.append(item)
    return joined


def process(args: argparse.Namespace) -> int:
    code_path = Path(args.code).expanduser() if args.code else None
    if code_path is not None and not code_path.is_file():
        raise CliError(f"--code {args.code}: no such file", code=2)
    if args.framework and code_path is None:
        raise CliError("--framework runs a script: give it with --code", code=2)
    inputs = parse_processing_inputs(args.input or [])
    outputs = parse_processing_outputs(args.output or [])
    name = args.name or default_job_name(code_path.name if code_path else "processing")
    check_job_name(name)
    with JobClient.from_env() as client:
        team = args.team or team_default(client)
        if jobs_named(client, name, team):
            raise CliError(f"a job named {name!r} exists already in team {team} (see --name)")
        body: dict[str, Any] = {
            "name": name,
            "team": team,
            "instance_type": args.instance_type,
            "instance_count": args.instance_count,
            "environment": dict(args.env or []),
            "inputs": [
                {
                    "name": item.spec.channel,
                    "uri": upload_input(client, item.spec, team=team, job_name=name),
                    "local_path": item.local_path,
                    "distribution": item.distribution,
                }
                for item in inputs
            ],
            "outputs": [
                {
                    "name": item.name,
                    "local_path": item.local_path,
                    "uri": item.uri,
                    "upload_mode": item.upload_mode,
                }
                for item in outputs
            ],
            "enable_network": args.network,
        }
        if code_path is not None:
            body["code"] = (
                upload_input(client, InputSpec("code", local=code_path), team=team, job_name=name)
                + f"/{code_path.name}"
            )
        if args.image:
            body["image"] = args.image
        else:
            body["framework"] = args.framework
        if args.entrypoint:
            body["container_entrypoint"] = shlex.split(args.entrypoint)
        if args.arg:
            body["container_arguments"] = list(args.arg)
        optional = {"max_runtime_seconds": args.max_runtime, "experiment": args.experiment}
        body.update({key: value for key, value in optional.items() if value is not None})
        job = client.create_once("/api/v1/processing-jobs", body)
        if not args.wait:
            if args.json:
                print_json(job)
            else:
                note(f"Submitted processing job {job['name']} (id {job['id']}, team {job['team']})")
                for output in job["processing"]["outputs"]:
                    note(f"  output {output['name']}: {output['local_path']} → {output['uri']}")
                print(job["name"], flush=True)
            return 0
        note(f"Submitted processing job {job['name']} (id {job['id']}); following it")
        return _follow_to_end(client, job, json_out=args.json)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "process",
        help="upload a script and local inputs, submit a processing job (client command)",
        description="Submit a processing job, like the SageMaker SDK's SKLearnProcessor / "
        "ScriptProcessor (--framework with --code) or Processor (--image). Prints the job "
        "name on stdout (notes go to stderr).",
    )
    image = parser.add_mutually_exclusive_group(required=True)
    image.add_argument(
        "--framework",
        help="run --code in this framework's image with its command (sklearn: python3, "
        "pytorch: python3, spark: spark-submit)",
    )
    image.add_argument("--image", help="run this image (its ENTRYPOINT unless --entrypoint)")
    parser.add_argument(
        "--code",
        metavar="FILE",
        help="a script, uploaded and run from /opt/ml/processing/input/code/ (with --image, "
        "--entrypoint is the command that runs it)",
    )
    parser.add_argument(
        "--entrypoint",
        metavar="COMMAND",
        help="the container's entrypoint, split like a shell would (e.g. 'python3 -u')",
    )
    parser.add_argument(
        "--arg",
        action="append",
        metavar="VALUE",
        help="an argument of the program (repeat; values may start with --)",
    )
    parser.add_argument(
        "--input",
        action="append",
        type=pair("--input", "NAME=SOURCE[:LOCAL_PATH][:sharded]"),
        metavar="NAME=SOURCE[:LOCAL_PATH][:sharded]",
        help="an input: a URI (s3://..., file://...) or a local file or folder to upload, "
        "downloaded to LOCAL_PATH (default /opt/ml/processing/input/NAME); ':sharded' gives "
        "each instance a disjoint share of its objects (ShardedByS3Key) (repeat)",
    )
    parser.add_argument(
        "--output",
        action="append",
        type=pair("--output", "NAME=LOCAL_PATH[:URI][:continuous]"),
        metavar="NAME=LOCAL_PATH[:URI][:continuous]",
        help="an output: every file under LOCAL_PATH is uploaded to URI (default: the team's "
        "processing/<job>/output/NAME) at the end, and while the job runs with ':continuous' "
        "(repeat)",
    )
    parser.add_argument("--name", help="job name (default: <script>-<UTC time>)")
    parser.add_argument(
        "--instance-type",
        default=DEFAULT_INSTANCE_TYPE,
        metavar="TYPE",
        help=f"instance type (default {DEFAULT_INSTANCE_TYPE})",
    )
    parser.add_argument(
        "--instance-count", type=positive, default=1, metavar="N", help="instances (default 1)"
    )
    parser.add_argument(
        "--env",
        action="append",
        type=pair("--env", "KEY=VALUE"),
        metavar="KEY=VALUE",
        help="an environment variable of the container (repeat)",
    )
    parser.add_argument(
        "--max-runtime", type=positive, metavar="SECONDS", help="stop the job after this long"
    )
    parser.add_argument(
        "--network", action="store_true", help="let the containers reach the network"
    )
    parser.add_argument("--experiment", metavar="NAME", help="the experiment of the job's run")
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
    parser.set_defaults(func=process)
