"""What each step of a definition becomes in this studio, and the properties it leaves.

A Processing step is a processing job (CreateProcessingJob's arguments → ProcessingRequest), a
Training step a training job (CreateTrainingJob's → JobRequest); a RegisterModel step a model
package version in the registry. Their arguments are resolved (expressions evaluated) first;
whatever cannot be mapped is a `StepRefused` naming it, which fails the step with that reason.

Images: the SageMaker SDK names AWS's ECR images; `ECR_FRAMEWORKS` maps each repository to the
studio's framework image (docs/pipelines.md has the table). Any other image must exist on the
container engine. Data: `s3://studiolo-<slug>/...` (the team's bucket) and the store's own URIs
are read as they are; any other bucket is refused with what to change.

Instance types: a type the studio defines (INSTANCE_TYPES) is used as it is; any other
(`ml.m5.large`...) runs on the studio's smallest type (fewest CPUs, then least memory).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from compute.frameworks import FRAMEWORK_IMAGES
from compute.instance_types import instance_types
from experiments.models import MetricSummary
from jobs.models import Job, JobKind
from jobs.services.processing import (
    InputRequest,
    OutputRequest,
    ProcessingRequest,
    processing_job_create,
)
from jobs.services.submission import (
    DEFAULT_MAX_RUNTIME,
    Actor,
    ChannelRequest,
    JobRequest,
    MetricDefinition,
    job_create,
)
from pipelines.definition import Context, Step, resolve
from registry.models import ApprovalStatus, ModelPackage, ModelPackageGroup
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    group_create,
    package_register_external,
    package_register_from_job,
)
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.artifacts.buckets import bucket_uri, key_for_uri, split_s3_uri, team_bucket
from studio.errors import StudioloError
from studio.names import MAX_NAME, is_name

# The repositories of AWS's framework images (any account, region and tag) → the studio's
# framework (compute.frameworks.FRAMEWORK_IMAGES).
ECR_FRAMEWORKS: dict[str, str] = {
    "sagemaker-scikit-learn": "sklearn",
    "pytorch-training": "pytorch",
    "pytorch-inference": "pytorch",
    "sagemaker-spark-processing": "spark",
}
_ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/([^:@]+)[:@].*$")
# The most of a property file or a metrics report read from the store.
PROPERTY_FILE_MAX_BYTES = 1_048_576
UNSUPPORTED = {
    "Transform": "batch transform steps",
    "Model": "CreateModel steps",
}


class StepRefused(StudioloError):
    """A step this studio cannot run as written: it fails with this message."""

    code = "step_refused"


def step_job_name(pipeline: str, execution_id: int, step: str) -> str:
    """`<pipeline>-<execution>-<step>`, a valid job name (NAME_RULE), the same every time it
    is asked for the same step: a retried advance can never make a second job."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", step).strip("-") or "step"
    name = f"{pipeline}-{execution_id}-{cleaned}"
    # A step name that had to change (`a_b` and `a.b` both give `a-b`) gets the hash too.
    if cleaned == step and is_name(name):
        return name
    digest = hashlib.sha256(f"{pipeline}/{step}".encode()).hexdigest()[:8]
    head = f"{pipeline[:24].strip('-')}-{execution_id}-"
    room = MAX_NAME - len(head) - len(digest) - 1
    return f"{head}{cleaned[:room].strip('-')}-{digest}".replace("--", "-")


def not_supported_reason(step: Step) -> str | None:
    if step.is_function:
        return "Python function (@step) steps are not yet supported in this studio"
    kind = UNSUPPORTED.get(step.type)
    return f"{kind} are not yet supported in this studio" if kind else None


# --- images, instance types, URIs --------------------------------------------------------------


def image_or_framework(image: str, where: str) -> tuple[str, str]:
    """(image, framework): one of them set, for an image URI of a definition."""
    if image in FRAMEWORK_IMAGES.values():
        framework = next(k for k, v in FRAMEWORK_IMAGES.items() if v == image)
        return "", framework
    match = _ECR_IMAGE.match(image)
    if match is None:
        return image, ""  # a local image: the job's checks say if the engine lacks it
    repository = match.group(1).rsplit("/", 1)[-1]
    mapped = ECR_FRAMEWORKS.get(repository)
    if mapped is None:
        raise StepRefused(
            f"{where}: {image} is an AWS image with no studio equivalent (mapped: "
            f"{', '.join(sorted(ECR_FRAMEWORKS))}); use one of those or a local image"
        )
    return "", mapped


def instance_type_for(requested: object) -> str:
    types = instance_types()
    if isinstance(requested, str) and requested in types:
        return requested
    smallest = min(types.values(), key=lambda t: (t.cpus, t.memory_mb, t.name))
    return smallest.name


def team_uri(team: Team, uri: object, where: str) -> str:
    """`uri` if the team's store area holds it (team bucket or store URI); else StepRefused
    saying what to change."""
    if not isinstance(uri, str) or not uri:
        raise StepRefused(f"{where}: a URI is required")
    try:
        key_for_uri(get_store(), uri, team, field=where)
    except StudioloError:
        parts = split_s3_uri(uri)
        bucket = parts[0] if parts else uri
        raise StepRefused(
            f"{where}: {uri} is not in this team's bucket; write it as "
            f"s3://{team_bucket(team)}/... (bucket {bucket!r} is not readable here)"
        ) from None
    return uri


def _team_key(team: Team, uri: str) -> str:
    return key_for_uri(get_store(), uri, team, field="uri")


def _bucket_uri(team: Team, store_uri: str) -> str:
    """The team-bucket form of a store URI (what a step's properties show)."""
    try:
        return bucket_uri(team, get_store().key_from_uri(store_uri))
    except (StudioloError, ValueError):
        return store_uri


def read_json(team: Team, uri: str) -> Any:
    """The JSON document at `uri` in the team's area (at most PROPERTY_FILE_MAX_BYTES)."""
    store = get_store()
    try:
        key = _team_key(team, uri)
        info = store.stat(key)
        if info.size > PROPERTY_FILE_MAX_BYTES:
            raise StepRefused(f"{uri}: {info.size} bytes, above {PROPERTY_FILE_MAX_BYTES}")
        return json.loads(store.get(key))
    except StepRefused:
        raise
    except StudioloError as error:
        raise StepRefused(f"{uri}: cannot be read ({error.message})") from error
    except ValueError as error:
        raise StepRefused(f"{uri}: not JSON ({error})") from error


def _int(value: object, where: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise StepRefused(f"{where}: {value!r} is not a whole number") from None


# --- jobs ------------------------------------------------------------------------------------


def job_start(
    *, step: Step, context: Context, team: Team, actor: Actor, name: str, experiment: str
) -> Job:
    """Create the job of a Processing or Training step, its arguments resolved."""
    arguments = resolve(dict(step.arguments), context)
    if step.type == "Processing":
        return processing_job_create(
            team=team, actor=actor, request=_processing(arguments, team, name, experiment)
        )
    return job_create(team=team, actor=actor, request=_training(arguments, team, name, experiment))


def _processing(
    args: Mapping[str, Any], team: Team, name: str, experiment: str
) -> ProcessingRequest:
    app = args.get("AppSpecification") or {}
    image, framework = image_or_framework(str(app.get("ImageUri", "")), "AppSpecification.ImageUri")
    if framework:  # the SDK's entrypoint names the script's path: run it in the framework image
        image = FRAMEWORK_IMAGES[framework]
    cluster = (args.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    inputs = []
    for item in args.get("ProcessingInputs") or []:
        source = item.get("S3Input")
        where = f"ProcessingInputs[{item.get('InputName')}]"
        if source is None:
            raise StepRefused(f"{where}: only S3Input inputs are supported")
        inputs.append(
            InputRequest(
                name=str(item.get("InputName", "")),
                uri=team_uri(team, source.get("S3Uri"), f"{where}.S3Uri"),
                local_path=str(source.get("LocalPath", "")),
                distribution=str(source.get("S3DataDistributionType", "FullyReplicated")),
                input_mode=str(source.get("S3InputMode", "File")),
            )
        )
    outputs = []
    for item in (args.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        target = item.get("S3Output") or {}
        where = f"ProcessingOutputConfig.Outputs[{item.get('OutputName')}]"
        uri = target.get("S3Uri")
        outputs.append(
            OutputRequest(
                name=str(item.get("OutputName", "")),
                local_path=str(target.get("LocalPath", "")),
                uri=team_uri(team, uri, f"{where}.S3Uri") if uri else "",
                upload_mode=str(target.get("S3UploadMode", "EndOfJob")),
            )
        )
    stopping = args.get("StoppingCondition") or {}
    return ProcessingRequest(
        name=name,
        instance_type=instance_type_for(cluster.get("InstanceType")),
        instance_count=_int(cluster.get("InstanceCount"), "InstanceCount", 1),
        image=image,
        container_entrypoint=app.get("ContainerEntrypoint"),
        container_arguments=app.get("ContainerArguments"),
        environment={k: str(v) for k, v in (args.get("Environment") or {}).items()},
        inputs=inputs,
        outputs=outputs,
        max_runtime_seconds=_int(
            stopping.get("MaxRuntimeInSeconds"), "MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME
        ),
        experiment=experiment,
    )


def _unquote(value: object) -> str:
    """The SDK writes `sagemaker_program` and the like as JSON strings ("\\"train.py\\"")."""
    text = str(value)
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return decoded if isinstance(decoded, str) else text


def _training(args: Mapping[str, Any], team: Team, name: str, experiment: str) -> JobRequest:
    algorithm = args.get("AlgorithmSpecification") or {}
    image, framework = image_or_framework(
        str(algorithm.get("TrainingImage", "")), "AlgorithmSpecification.TrainingImage"
    )
    raw = dict(args.get("HyperParameters") or {})
    entry_point = _unquote(raw.pop("sagemaker_program", "")) if "sagemaker_program" in raw else ""
    source = _unquote(raw.pop("sagemaker_submit_directory", "")) if entry_point else ""
    # The SDK's own settings (region, log level...) are not the script's arguments.
    hyperparameters = {k: v for k, v in raw.items() if not k.startswith("sagemaker_")}
    if framework and not entry_point:
        image, framework = FRAMEWORK_IMAGES[framework], ""  # the image's own program
    channels = []
    for item in args.get("InputDataConfig") or []:
        data = (item.get("DataSource") or {}).get("S3DataSource") or {}
        where = f"InputDataConfig[{item.get('ChannelName')}]"
        channels.append(
            ChannelRequest(
                name=str(item.get("ChannelName", "")),
                uri=team_uri(team, data.get("S3Uri"), f"{where}.S3Uri"),
                content_type=str(item.get("ContentType", "")),
                distribution=str(data.get("S3DataDistributionType", "FullyReplicated")),
            )
        )
    output = (args.get("OutputDataConfig") or {}).get("S3OutputPath")
    resources = args.get("ResourceConfig") or {}
    stopping = args.get("StoppingCondition") or {}
    return JobRequest(
        name=name,
        instance_type=instance_type_for(resources.get("InstanceType")),
        instance_count=_int(resources.get("InstanceCount"), "InstanceCount", 1),
        image=image,
        framework=framework,
        entry_point=entry_point,
        source_uri=team_uri(team, source, "sagemaker_submit_directory") if source else "",
        hyperparameters=hyperparameters,
        environment={k: str(v) for k, v in (args.get("Environment") or {}).items()},
        channels=channels,
        output_path=team_uri(team, output, "OutputDataConfig.S3OutputPath") if output else "",
        max_runtime_seconds=_int(
            stopping.get("MaxRuntimeInSeconds"), "MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME
        ),
        metric_definitions=[
            MetricDefinition(name=str(m["Name"]), regex=str(m["Regex"]))
            for m in algorithm.get("MetricDefinitions") or []
        ],
        experiment=experiment,
    )


def job_properties(job: Job, team: Team) -> dict[str, Any]:
    """The Describe* document of a finished job, as `Steps.<name>....` references read it."""
    if job.kind == JobKind.PROCESSING:
        settings = job.processing or {}
        return {
            "ProcessingJobName": job.name,
            "ProcessingJobArn": f"studiolo:job/{job.pk}",
            "ProcessingJobStatus": job.status,
            "ExitMessage": settings.get("exit_message", ""),
            "FailureReason": job.failure_reason,
            "ProcessingInputs": [
                {"InputName": i["name"], "S3Input": {"S3Uri": _bucket_uri(team, i["uri"])}}
                for i in settings.get("inputs", [])
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": o["name"],
                        "S3Output": {
                            "S3Uri": _bucket_uri(team, o["uri"]),
                            "LocalPath": o["local_path"],
                            "S3UploadMode": o["upload_mode"],
                        },
                    }
                    for o in settings.get("outputs", [])
                ]
            },
        }
    metrics = MetricSummary.objects.filter(run_id=job.run_id) if job.run_id else []
    return {
        "TrainingJobName": job.name,
        "TrainingJobArn": f"studiolo:job/{job.pk}",
        "TrainingJobStatus": job.status,
        "FailureReason": job.failure_reason,
        "HyperParameters": dict(job.hyperparameters),
        "ModelArtifacts": {"S3ModelArtifacts": _bucket_uri(team, job.model_artifact_uri)},
        "FinalMetricDataList": [{"MetricName": m.key, "Value": m.last_value} for m in metrics],
    }


# --- RegisterModel ---------------------------------------------------------------------------


def _flat_metrics(report: Any) -> dict[str, float]:
    """SageMaker's model-quality report (`{"metrics": {"accuracy": {"value": 0.9}}}`), or a
    flat `{name: number}`, as the registry's `{name: number}`."""
    source = report.get("metrics", report) if isinstance(report, dict) else {}
    result: dict[str, float] = {}
    for key, value in source.items() if isinstance(source, dict) else []:
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            result[str(key)] = float(value)
    return result


def register_model(
    *, step: Step, context: Context, team: Team, actor: Actor, description: str
) -> ModelPackage:
    """A model package version in the step's group (created when missing), pending approval,
    with the model of the training step that made it and the metrics of its report."""
    args = resolve(dict(step.arguments), context)
    status = str(args.get("ModelApprovalStatus") or ApprovalStatus.PENDING)
    if status != ApprovalStatus.PENDING:
        raise StepRefused(
            f"ModelApprovalStatus: {status!r}: a pipeline registers packages "
            "PendingManualApproval here; approving is a reviewer's decision in the registry"
        )
    containers = (args.get("InferenceSpecification") or {}).get("Containers") or []
    if len(containers) != 1:
        raise StepRefused("InferenceSpecification.Containers: exactly one container is supported")
    container = containers[0]
    image, framework = image_or_framework(str(container.get("Image", "")), "Containers[0].Image")
    model_uri = team_uri(team, container.get("ModelDataUrl"), "Containers[0].ModelDataUrl")
    statistics = ((args.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics")
    metrics = _flat_metrics(read_json(team, statistics["S3Uri"])) if statistics else {}
    group_name = str(args.get("ModelPackageGroupName", ""))
    group = ModelPackageGroup.objects.filter(team=team, name=group_name).first()
    if group is None:
        group = group_create(team=team, name=group_name, actor=actor)
    inference = InferenceSpec(
        framework=framework,
        image=image,
        entry_point=str((container.get("Environment") or {}).get("SAGEMAKER_PROGRAM", "")),
        content_types=tuple(args["InferenceSpecification"].get("SupportedContentTypes") or ())
        or InferenceSpec.content_types,
        response_types=tuple(args["InferenceSpecification"].get("SupportedResponseMIMETypes") or ())
        or InferenceSpec.response_types,
    )
    key = _team_key(team, model_uri)
    store = get_store()
    job = (
        Job.objects.filter(team=team, kind=JobKind.TRAINING, model_artifact_uri=store.uri(key))
        .order_by("-pk")
        .first()
    )
    if job is not None:
        return package_register_from_job(
            group=group,
            job=job,
            actor=actor,
            inference=inference,
            description=description,
            metrics=metrics,
        )
    return package_register_external(
        group=group,
        actor=actor,
        artifact=ExternalArtifact(artifact_uri=model_uri, metrics=metrics),
        inference=inference,
        description=description,
    )


def package_properties(package: ModelPackage) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": package.group.name,
        "ModelPackageVersion": package.version,
        "ModelPackageArn": f"studiolo:model-package/{package.group.name}/{package.version}",
        "ModelApprovalStatus": package.approval_status,
        "ModelMetrics": dict(package.metrics),
    }
