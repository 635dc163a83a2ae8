"""Submitting a processing job (SageMaker's CreateProcessingJob, contract §5): every check
happens here, before anything starts, and each failure is a 400 naming the field.

A processing job runs an image's own program (`image`, with `container_entrypoint` and
`container_arguments` as AppSpecification gives them), or a user's script in a framework
image, as the SageMaker SDK's ScriptProcessor does (`framework` + `code`): the script is the
input `code` at /opt/ml/processing/input/code/ and the entrypoint is the framework's
command followed by the script's path there.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from compute.frameworks import framework_image
from compute.instance_types import InstanceType
from compute.runtime import get_runtime
from compute.runtime.base import ENV_KEY
from jobs.contract import DISTRIBUTIONS, FULLY_REPLICATED
from jobs.models import Job, JobKind
from jobs.names import CHANNEL_NAME_RULE, is_channel_name
from jobs.processing_contract import (
    CODE_INPUT,
    CODE_LOCAL_PATH,
    PROCESSING_ROOT,
    ProcessingInput,
    ProcessingOutput,
    ProcessingSettings,
    is_within,
    local_path_problem,
)
from jobs.services.idempotency import Idempotency, job_submit_once
from jobs.services.submission import (
    DEFAULT_MAX_RUNTIME,
    Actor,
    job_admit,
    job_insert,
    key_in_team,
    prefix_or_object_exists,
)
from studio.accounts.models import Team
from studio.artifacts import ArtifactStore, get_store
from studio.artifacts.keys import team_prefix
from studio.errors import ValidationError

DEFAULT_EXPERIMENT = "processing-jobs"
# CreateProcessingJob's limits (contract §5 and §11).
MAX_INPUTS = 10
MAX_OUTPUTS = 10
MAX_ENV = 100
MAX_ENV_VALUE = 256
MAX_ENTRYPOINT = 100
MAX_ARGUMENTS = 256
MAX_ARGUMENT_LENGTH = 256
INPUT_MODES = ("File",)
UPLOAD_MODES = ("EndOfJob", "Continuous")

# What runs a script processor's script in each framework image: the SDK's `command`
# (`python3` for SKLearnProcessor and PyTorchProcessor; the spark image's launcher wraps
# spark-submit, on one instance or as a cluster across the job's instances).
FRAMEWORK_COMMANDS: dict[str, list[str]] = {
    "sklearn": ["python3"],
    "pytorch": ["python3"],
    "spark": ["studiolo-spark-submit"],
}

# Memory (MiB) one instance needs for PySpark. Spark refuses a driver or executor heap under
# ~450 MB, and on several instances algo-1 holds the master, a worker, the driver and an
# executor, each a JVM of its own.
SPARK_MIN_MEMORY_MB = {"single": 1024, "cluster": 2048}


@dataclass(frozen=True)
class InputRequest:
    name: str
    uri: str
    local_path: str = ""  # default /opt/ml/processing/input/<name>
    distribution: str = FULLY_REPLICATED
    input_mode: str = "File"


@dataclass(frozen=True)
class OutputRequest:
    name: str
    local_path: str = ""  # default /opt/ml/processing/output/<name>
    uri: str = ""  # default the team's area: teams/<slug>/processing/<job>/output/<name>
    upload_mode: str = "EndOfJob"


@dataclass(frozen=True)
class ProcessingRequest:
    name: str
    instance_type: str
    image: str = ""
    framework: str = ""
    code: str = ""  # a script processor's script: its store URI (the CLI uploads it)
    instance_count: int = 1
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME
    environment: Mapping[str, object] = field(default_factory=dict)
    container_entrypoint: Sequence[str] | None = None
    container_arguments: Sequence[str] | None = None
    inputs: Sequence[InputRequest] = ()
    outputs: Sequence[OutputRequest] = ()
    enable_network: bool = False
    experiment: str = ""


def processing_job_create(
    *, team: Team, actor: Actor, request: ProcessingRequest, idempotency: Idempotency | None = None
) -> Job:
    return job_submit_once(
        actor=actor,
        idempotency=idempotency,
        create=lambda: _processing_job_create(
            team=team, actor=actor, request=request, idempotency=idempotency
        ),
    )


def _processing_job_create(
    *, team: Team, actor: Actor, request: ProcessingRequest, idempotency: Idempotency | None
) -> Job:
    instance = job_admit(
        team=team,
        actor=actor,
        name=request.name,
        instance_type=request.instance_type,
        instance_count=request.instance_count,
        max_runtime_seconds=request.max_runtime_seconds,
    )
    if not get_runtime().isolated:
        # A processing program reads and writes /opt/ml/processing/... at absolute paths,
        # which only a container has (the process runtime moves /opt/ml elsewhere).
        raise ValidationError(
            "kind: processing jobs need the Docker runtime (RUNTIME=docker): their programs "
            "use /opt/ml/processing/ at absolute paths, which the process runtime cannot give",
            field="kind",
        )
    if request.framework == "spark":
        _check_spark_memory(instance, request.instance_count)
    store = get_store()
    image = _image(request)
    environment = _environment(request.environment)
    entrypoint = _strings("container_entrypoint", request.container_entrypoint, MAX_ENTRYPOINT)
    arguments = _strings("container_arguments", request.container_arguments, MAX_ARGUMENTS)
    inputs = _inputs(store, team, request.inputs, reserve_code=bool(request.code))
    script = ""
    if request.code:
        code_input, script = _code(store, team, request)
        inputs.append(code_input)
        command = FRAMEWORK_COMMANDS[request.framework] if request.framework else entrypoint
        entrypoint = [*(command or []), f"{CODE_LOCAL_PATH}/{script}"]
    outputs = _outputs(store, team, request.name, request.outputs)
    _check_paths(inputs, outputs)
    settings: ProcessingSettings = {
        "inputs": inputs,
        "outputs": outputs,
        "code": script,
        "exit_message": "",
    }
    return job_insert(
        team=team,
        actor=actor,
        name=request.name,
        experiment=request.experiment or DEFAULT_EXPERIMENT,
        queue=instance.queue,
        audit_details={
            "image": image,
            "instance_type": instance.name,
            "instance_count": request.instance_count,
            "inputs": [item["uri"] for item in inputs],
            "outputs": [item["uri"] for item in outputs],
        },
        idempotency=idempotency,
        fields={
            "kind": JobKind.PROCESSING,
            "image": image,
            "framework": request.framework,
            "entry_point": script,
            "source_uri": store.uri(key_in_team(store, team, request.code, "code"))
            if request.code
            else "",
            "environment": environment,
            "container_entrypoint": entrypoint,
            "container_arguments": arguments,
            "processing": settings,
            # Where the job's outputs go unless an output says otherwise.
            "output_path": store.uri(_job_area(team, request.name)),
            "instance_type": instance.name,
            "instance_count": request.instance_count,
            "max_runtime_seconds": request.max_runtime_seconds,
            "enable_network": request.enable_network,
        },
    )


def _job_area(team: Team, name: str) -> str:
    return f"{team_prefix(team)}processing/{name}"


def _image(request: ProcessingRequest) -> str:
    if bool(request.image) == bool(request.framework):
        raise ValidationError("image: give either an image or a framework", field="image")
    if request.framework:
        image = framework_image(request.framework)  # 400 naming an unknown framework
        if request.framework not in FRAMEWORK_COMMANDS:
            raise ValidationError(
                f"framework: {request.framework!r} has no processing command "
                f"(available: {', '.join(sorted(FRAMEWORK_COMMANDS))})",
                field="framework",
            )
        if not request.code:
            raise ValidationError(
                "code: a framework processor runs a script: give its URI", field="code"
            )
    else:
        image = request.image
        if request.code and not request.container_entrypoint:
            raise ValidationError(
                "container_entrypoint: with code and an image, give the command that runs "
                'the script (e.g. ["python3"])',
                field="container_entrypoint",
            )
    if not get_runtime().image_exists(image):
        field_name = "framework" if request.framework else "image"
        raise ValidationError(
            f"{field_name}: image {image!r} does not exist on the container engine",
            field=field_name,
        )
    return image


def _environment(raw: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(raw, Mapping) or len(raw) > MAX_ENV:
        raise ValidationError(
            f"environment: an object of at most {MAX_ENV} entries", field="environment"
        )
    result: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or len(key) > 256 or not ENV_KEY.match(key):
            raise ValidationError(
                f"environment.{key}: not a valid variable name", field="environment"
            )
        if not isinstance(value, str) or len(value) > MAX_ENV_VALUE:
            raise ValidationError(
                f"environment.{key}: a string of at most {MAX_ENV_VALUE} characters",
                field=f"environment.{key}",
            )
        result[key] = value
    return result


def _strings(name: str, raw: Sequence[str] | None, limit: int) -> list[str] | None:
    if raw is None:
        return None
    if (
        isinstance(raw, str)
        or not 1 <= len(raw) <= limit
        or not all(isinstance(v, str) and len(v) <= MAX_ARGUMENT_LENGTH for v in raw)
    ):
        raise ValidationError(
            f"{name}: a list of 1-{limit} strings of at most {MAX_ARGUMENT_LENGTH} characters",
            field=name,
        )
    return list(raw)


def _local_path(where: str, raw: str, default: str) -> str:
    path = raw or default
    problem = local_path_problem(path)
    if problem is not None:
        raise ValidationError(
            f"{where}.local_path: {path!r} {problem}", field=f"{where}.local_path"
        )
    return path


def _inputs(
    store: ArtifactStore, team: Team, raw: Sequence[InputRequest], *, reserve_code: bool
) -> list[ProcessingInput]:
    if len(raw) > MAX_INPUTS:
        raise ValidationError(f"inputs: at most {MAX_INPUTS}", field="inputs")
    result: list[ProcessingInput] = []
    names: set[str] = set()
    for item in raw:
        where = f"inputs.{item.name}"
        if not is_channel_name(item.name) or item.name in names:
            raise ValidationError(
                f"{where}: input names are unique, {CHANNEL_NAME_RULE}", field=f"{where}.name"
            )
        if reserve_code and item.name == CODE_INPUT:
            raise ValidationError(
                f"{where}: the name {CODE_INPUT!r} is the script's input", field=f"{where}.name"
            )
        names.add(item.name)
        local_path = _local_path(where, item.local_path, f"{PROCESSING_ROOT}/input/{item.name}")
        if item.distribution not in DISTRIBUTIONS:
            raise ValidationError(
                f"{where}.distribution: one of {', '.join(DISTRIBUTIONS)}",
                field=f"{where}.distribution",
            )
        if item.input_mode not in INPUT_MODES:
            raise ValidationError(
                f"{where}.input_mode: {item.input_mode!r} is not supported (File)",
                field=f"{where}.input_mode",
            )
        if not item.uri:
            raise ValidationError(f"{where}.uri: required", field=f"{where}.uri")
        key = key_in_team(store, team, item.uri, f"{where}.uri")
        if not prefix_or_object_exists(store, key):
            raise ValidationError(f"{where}.uri: {item.uri} does not exist", field=f"{where}.uri")
        result.append(
            {
                "name": item.name,
                "uri": store.uri(key),
                "local_path": local_path,
                "distribution": item.distribution,
                "input_mode": item.input_mode,
            }
        )
    return result


def _code(
    store: ArtifactStore, team: Team, request: ProcessingRequest
) -> tuple[ProcessingInput, str]:
    key = key_in_team(store, team, request.code, "code")
    if not store.exists(key):
        raise ValidationError(
            f"code: {request.code} does not exist (give the script file's URI)", field="code"
        )
    script = posixpath.basename(key)
    code_input: ProcessingInput = {
        "name": CODE_INPUT,
        "uri": store.uri(key),
        "local_path": CODE_LOCAL_PATH,
        "distribution": FULLY_REPLICATED,
        "input_mode": "File",
    }
    return code_input, script


def _outputs(
    store: ArtifactStore, team: Team, job_name: str, raw: Sequence[OutputRequest]
) -> list[ProcessingOutput]:
    if len(raw) > MAX_OUTPUTS:
        raise ValidationError(f"outputs: at most {MAX_OUTPUTS}", field="outputs")
    result: list[ProcessingOutput] = []
    names: set[str] = set()
    for item in raw:
        where = f"outputs.{item.name}"
        if not is_channel_name(item.name) or item.name in names:
            raise ValidationError(
                f"{where}: output names are unique, {CHANNEL_NAME_RULE}", field=f"{where}.name"
            )
        names.add(item.name)
        local_path = _local_path(where, item.local_path, f"{PROCESSING_ROOT}/output/{item.name}")
        if item.upload_mode not in UPLOAD_MODES:
            raise ValidationError(
                f"{where}.upload_mode: one of {', '.join(UPLOAD_MODES)}",
                field=f"{where}.upload_mode",
            )
        if item.uri:
            key = key_in_team(store, team, item.uri, f"{where}.uri")
        else:
            key = f"{_job_area(team, job_name)}/output/{item.name}"
        result.append(
            {
                "name": item.name,
                "uri": store.uri(key).rstrip("/"),
                "local_path": local_path,
                "upload_mode": item.upload_mode,
            }
        )
    return result


def _check_paths(inputs: list[ProcessingInput], outputs: list[ProcessingOutput]) -> None:
    """Local paths are unique across inputs and outputs. Inputs may nest (the SDK's own
    layout puts the script's input/code inside input/: both downloads land in one tree),
    but an output may not contain another output (its files would go to two places) nor
    contain an input (the input's data would be uploaded as a result)."""
    seen: dict[str, str] = {}
    for kind, items in (("inputs", inputs), ("outputs", outputs)):
        for item in items:
            where = f"{kind}.{item['name']}"
            path = item["local_path"]
            if path in seen:
                raise ValidationError(
                    f"{where}.local_path: {path} is also the local path of {seen[path]}",
                    field=f"{where}.local_path",
                )
            seen[path] = where
    for output in outputs:
        for other in outputs:
            if other is not output and is_within(other["local_path"], output["local_path"]):
                where = f"outputs.{other['name']}"
                raise ValidationError(
                    f"{where}.local_path: {other['local_path']} is inside output "
                    f"{output['name']}'s {output['local_path']}",
                    field=f"{where}.local_path",
                )
        for item in inputs:
            if is_within(item["local_path"], output["local_path"]):
                where = f"inputs.{item['name']}"
                raise ValidationError(
                    f"{where}.local_path: {item['local_path']} is inside output "
                    f"{output['name']}'s {output['local_path']}: its data would be uploaded "
                    "as output",
                    field=f"{where}.local_path",
                )


def _check_spark_memory(instance: InstanceType, count: int) -> None:
    needed = SPARK_MIN_MEMORY_MB["single" if count == 1 else "cluster"]
    if instance.memory_mb < needed:
        raise ValidationError(
            f"instance_type: PySpark on {count} instance(s) needs at least {needed} MB of memory "
            f"per instance; {instance.name} has {instance.memory_mb} MB",
            field="instance_type",
        )
