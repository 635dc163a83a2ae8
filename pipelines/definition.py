"""A pipeline definition: SageMaker's pipeline JSON ("Version": "2020-12-01"), parsed and
checked into a typed, immutable model, and the evaluator of its expressions.

Pure: no database, no Django settings, no I/O. Every refusal is a ValidationError whose
`field` says where, in the document's own words: `definition.Steps[Evaluate].Arguments.
ProcessingInputs[0].S3Input.S3Uri.Get`. A step nested in a Condition's branch is named by its
path too: `definition.Steps[Check].Arguments.IfSteps[Register]...`.

What is accepted is what the SageMaker Python SDK writes with `Pipeline(...).definition()` for
the step types the studio can run (SageMaker's contract §7): Processing, Training (and the
SDK's `@step` Python functions, which compile to a Training step), Transform, Condition,
RegisterModel, Model (CreateModel; `CreateModel` is taken as the same) and Fail. Steps of
other SageMaker types (Lambda, Callback, Tuning, EMR, ...) are refused by name: nothing here
could run them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from studio.errors import ValidationError

VERSION = "2020-12-01"
ROOT = "definition"
# CreatePipeline.PipelineDefinition: 1..1,048,576 characters (botocore's shape). Measured on
# the canonical JSON, so white space in the file sent does not count.
MAX_DEFINITION_BYTES = 1_048_576
# SageMaker publishes no quota on steps per pipeline that we could find; 100 is ours: ten
# times the canonical pipeline, and a DAG page that a person can still read.
MAX_STEPS = 100
MAX_PARAMETERS = 200  # SageMaker's PipelineParameters list: 0..200 items
MAX_NAME = 256  # PipelineName / StepName: at most 256 characters
STEP_NAME = re.compile(r"[A-Za-z0-9\-_]{1,256}")  # SageMaker's StepName pattern
PARAMETER_NAME = re.compile(r"[A-Za-z0-9\-_]{1,256}")  # SageMaker's Parameter.Name pattern
PARAMETER_VALUE_LIMIT = 1024  # StartPipelineExecution: a value of at most 1024 characters


class StepType:
    PROCESSING = "Processing"
    TRAINING = "Training"
    TRANSFORM = "Transform"
    CONDITION = "Condition"
    REGISTER_MODEL = "RegisterModel"
    MODEL = "Model"  # the SDK's CreateModel step (StepTypeEnum.CREATE_MODEL)
    FAIL = "Fail"


# What a document may say for each accepted type.
STEP_TYPES: dict[str, str] = {
    "Processing": StepType.PROCESSING,
    "Training": StepType.TRAINING,
    "Transform": StepType.TRANSFORM,
    "Condition": StepType.CONDITION,
    "RegisterModel": StepType.REGISTER_MODEL,
    "Model": StepType.MODEL,
    "CreateModel": StepType.MODEL,
    "Fail": StepType.FAIL,
}

# The first segment of `Steps.<name>.<path>` that each step type can have: the top-level
# members of the Describe* response its step's properties follow (botocore's shapes), and
# `PropertyFiles` for the steps that can declare property files.
_TRAINING = (
    "TrainingJobName TrainingJobArn TuningJobArn LabelingJobArn AutoMLJobArn ModelArtifacts "
    "TrainingJobStatus SecondaryStatus FailureReason HyperParameters AlgorithmSpecification "
    "RoleArn InputDataConfig OutputDataConfig ResourceConfig WarmPoolStatus VpcConfig "
    "StoppingCondition CreationTime TrainingStartTime TrainingEndTime LastModifiedTime "
    "SecondaryStatusTransitions FinalMetricDataList EnableNetworkIsolation "
    "EnableInterContainerTrafficEncryption EnableManagedSpotTraining CheckpointConfig "
    "TrainingTimeInSeconds BillableTimeInSeconds DebugHookConfig ExperimentConfig "
    "DebugRuleConfigurations TensorBoardOutputConfig DebugRuleEvaluationStatuses "
    "ProfilerConfig ProfilingStatus Environment RetryStrategy"
)
_PROCESSING = (
    "ProcessingInputs ProcessingOutputConfig ProcessingJobName ProcessingResources "
    "StoppingCondition AppSpecification Environment NetworkConfig RoleArn ExperimentConfig "
    "ProcessingJobArn ProcessingJobStatus ExitMessage FailureReason ProcessingEndTime "
    "ProcessingStartTime LastModifiedTime CreationTime MonitoringScheduleArn AutoMLJobArn "
    "TrainingJobArn PropertyFiles"
)
_TRANSFORM = (
    "TransformJobName TransformJobArn TransformJobStatus FailureReason ModelName "
    "MaxConcurrentTransforms ModelClientConfig MaxPayloadInMB BatchStrategy Environment "
    "TransformInput TransformOutput DataCaptureConfig TransformResources CreationTime "
    "TransformStartTime TransformEndTime LabelingJobArn AutoMLJobArn DataProcessing "
    "ExperimentConfig"
)
_MODEL = (
    "ModelName PrimaryContainer Containers InferenceExecutionConfig ExecutionRoleArn "
    "VpcConfig CreationTime ModelArn EnableNetworkIsolation"
)
_MODEL_PACKAGE = (
    "ModelPackageName ModelPackageGroupName ModelPackageVersion ModelPackageArn "
    "ModelPackageDescription CreationTime InferenceSpecification SourceAlgorithmSpecification "
    "ValidationSpecification ModelPackageStatus ModelPackageStatusDetails ModelApprovalStatus "
    "CreatedBy MetadataProperties ModelMetrics LastModifiedTime LastModifiedBy "
    "ApprovalDescription Domain Task SamplePayloadUrl CustomerMetadataProperties "
    "DriftCheckBaselines AdditionalInferenceSpecifications SkipModelValidation SourceUri"
)
PROPERTY_ROOTS: dict[str, frozenset[str]] = {
    StepType.TRAINING: frozenset(_TRAINING.split()),
    StepType.PROCESSING: frozenset(_PROCESSING.split()),
    StepType.TRANSFORM: frozenset(_TRANSFORM.split()),
    StepType.MODEL: frozenset(_MODEL.split()),
    StepType.REGISTER_MODEL: frozenset(_MODEL_PACKAGE.split()),
    StepType.CONDITION: frozenset({"Outcome"}),
    StepType.FAIL: frozenset(),
}

PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = frozenset(
    {
        "StartDateTime",
        "CurrentDateTime",
        "PipelineName",
        "PipelineArn",
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "TrainingJobName",
        "ProcessingJobName",
    }
)
EXPERIMENT_VARIABLES = frozenset({"ExperimentName", "TrialName"})
COMPARISONS = frozenset(
    {"Equals", "GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo"}
)
CONDITION_TYPES = COMPARISONS | {"In", "Not", "Or"}
RETRY_EXCEPTIONS = frozenset(
    {
        "Step.SERVICE_FAULT",
        "Step.THROTTLING",
        "SageMaker.JOB_INTERNAL_ERROR",
        "SageMaker.CAPACITY_ERROR",
        "SageMaker.RESOURCE_LIMIT",
    }
)
MAX_RETRY_INTERVAL = 43_200
MAX_RETRY_ATTEMPTS = 20
MAX_RETRY_EXPIRE_MIN = 14_400
# Where the SDK's `@step` puts its runtime scripts: a Training step with this input channel
# (or these container arguments) is a Python function step.
FUNCTION_CHANNEL = "sagemaker_remote_function_bootstrap"
FUNCTION_ARGUMENT = "--pipeline_step_name"

_EXPRESSION_KEYS = frozenset({"Get", "Std:Join", "Std:JsonGet"})


# --- the typed model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # String | Integer | Float | Boolean
    default: Any = None  # None: none given, a value must be given at start
    enum_values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class PropertyFile:
    name: str
    output_name: str  # the processing output it is read from
    file_path: str  # relative to that output's S3 URI


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool
    expire_after: timedelta | None  # None: never expires
    expire_after_text: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    exception_types: tuple[str, ...]
    interval_seconds: int = 1
    backoff_rate: float = 2.0
    max_attempts: int | None = 5
    expire_after_min: int | None = None


@dataclass(frozen=True)
class Step:
    name: str
    type: str  # a StepType value
    arguments: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()  # as written in DependsOn
    # DependsOn, the steps its expressions reference, and the condition whose branch holds it.
    dependencies: frozenset[str] = frozenset()
    property_files: tuple[PropertyFile, ...] = ()
    cache: CacheConfig | None = None
    retry_policies: tuple[RetryPolicy, ...] = ()
    display_name: str = ""
    description: str = ""
    is_function: bool = False  # a Training step written by the SDK's `@step`
    condition: str = ""  # the Condition step whose branch holds it, "" at the top level
    branch: str = ""  # "IfSteps" or "ElseSteps" with `condition`
    if_steps: tuple[str, ...] = ()  # for a Condition step: its branches' step names
    else_steps: tuple[str, ...] = ()
    location: str = ""  # where it is in the document, for errors


@dataclass(frozen=True)
class Definition:
    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]  # every step, those nested in branches included, in DAG order
    metadata: Mapping[str, Any] = field(default_factory=dict)
    experiment_config: Mapping[str, Any] | None = None
    document: Mapping[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    @property
    def digest(self) -> str:
        return definition_digest(self.document)


# --- canonical form ---------------------------------------------------------------------------


def canonical_json(document: Mapping[str, Any]) -> str:
    """One text per document: sorted keys, no white space. Its sha256 is the version's digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pretty_json(document: Mapping[str, Any]) -> str:
    """The canonical document for people (and for diffs between versions)."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def definition_digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


# --- parsing ----------------------------------------------------------------------------------


def definition_parse(raw: object) -> Definition:
    """The definition in `raw` (a JSON text, as the SDK's `definition()` returns, or the
    decoded document), checked; a ValidationError names the first problem and where."""
    document = _document(raw)
    size = len(canonical_json(document).encode())
    if size > MAX_DEFINITION_BYTES:
        raise ValidationError(
            f"{ROOT}: {size} bytes, above the limit of {MAX_DEFINITION_BYTES} bytes", field=ROOT
        )
    version = document.get("Version")
    if version != VERSION:
        raise ValidationError(
            f"{ROOT}.Version: must be {VERSION!r}, got {version!r}", field=f"{ROOT}.Version"
        )
    known = {"Version", "Metadata", "Parameters", "PipelineExperimentConfig", "Steps"}
    for key in document:
        if key not in known:
            raise ValidationError(
                f"{ROOT}.{key}: not a member of a definition", field=f"{ROOT}.{key}"
            )
    metadata = document.get("Metadata", {})
    if not isinstance(metadata, dict):
        raise ValidationError(f"{ROOT}.Metadata: must be an object", field=f"{ROOT}.Metadata")
    parameters = _parameters(document.get("Parameters", []))
    experiment = document.get("PipelineExperimentConfig")
    if experiment is not None and not isinstance(experiment, dict):
        raise ValidationError(
            f"{ROOT}.PipelineExperimentConfig: must be an object",
            field=f"{ROOT}.PipelineExperimentConfig",
        )
    raw_steps = document.get("Steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ValidationError(f"{ROOT}.Steps: a list of at least one step", field=f"{ROOT}.Steps")
    drafts = _steps(raw_steps, f"{ROOT}.Steps", condition="", branch="")
    if len(drafts) > MAX_STEPS:
        raise ValidationError(
            f"{ROOT}.Steps: {len(drafts)} steps, above the limit of {MAX_STEPS}",
            field=f"{ROOT}.Steps",
        )
    steps = _link(drafts, {p.name: p for p in parameters})
    return Definition(
        parameters=tuple(parameters),
        steps=tuple(_ordered(steps)),
        metadata=metadata,
        experiment_config=experiment,
        document=document,
    )


def _document(raw: object) -> dict[str, Any]:
    if isinstance(raw, bytes | bytearray):
        if len(raw) > 2 * MAX_DEFINITION_BYTES:  # don't decode what is plainly too big
            raise ValidationError(
                f"{ROOT}: above the limit of {MAX_DEFINITION_BYTES} bytes", field=ROOT
            )
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        if len(raw) > 2 * MAX_DEFINITION_BYTES:
            raise ValidationError(
                f"{ROOT}: above the limit of {MAX_DEFINITION_BYTES} bytes", field=ROOT
            )
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(f"{ROOT}: not JSON: {exc}", field=ROOT) from exc
    if not isinstance(raw, dict):
        raise ValidationError(f"{ROOT}: must be a JSON object", field=ROOT)
    return raw


def _parameters(raw: object) -> list[Parameter]:
    where = f"{ROOT}.Parameters"
    if not isinstance(raw, list):
        raise ValidationError(f"{where}: must be a list", field=where)
    if len(raw) > MAX_PARAMETERS:
        raise ValidationError(f"{where}: at most {MAX_PARAMETERS} parameters", field=where)
    parameters: list[Parameter] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{at}: must be an object", field=at)
        name = item.get("Name")
        if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
            raise ValidationError(
                f"{at}.Name: 1-256 letters, digits, hyphens and underscores", field=f"{at}.Name"
            )
        at = f"{where}[{name}]"
        if any(p.name == name for p in parameters):
            raise ValidationError(f"{at}: two parameters named {name!r}", field=at)
        kind = item.get("Type")
        if kind not in PARAMETER_TYPES:
            raise ValidationError(
                f"{at}.Type: one of {', '.join(PARAMETER_TYPES)}, got {kind!r}", field=f"{at}.Type"
            )
        enum_values = item.get("EnumValues", [])
        if not isinstance(enum_values, list):
            raise ValidationError(f"{at}.EnumValues: must be a list", field=f"{at}.EnumValues")
        for value in enum_values:
            if not value_is_of_type(value, kind):
                raise ValidationError(
                    f"{at}.EnumValues: {value!r} is not a {kind}", field=f"{at}.EnumValues"
                )
        default = item.get("DefaultValue")
        if default is not None:
            if not value_is_of_type(default, kind):
                raise ValidationError(
                    f"{at}.DefaultValue: {default!r} is not a {kind}", field=f"{at}.DefaultValue"
                )
            if enum_values and default not in enum_values:
                raise ValidationError(
                    f"{at}.DefaultValue: {default!r} is not one of EnumValues",
                    field=f"{at}.DefaultValue",
                )
        parameters.append(Parameter(name, kind, default, tuple(enum_values)))
    return parameters


def value_is_of_type(value: object, kind: str) -> bool:
    """Whether a JSON value is of a parameter type (a Float takes whole numbers too)."""
    if kind == "String":
        return isinstance(value, str)
    if kind == "Boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "Integer":
        return isinstance(value, int)
    if kind == "Float":
        return isinstance(value, int | float)
    return False


@dataclass
class _Draft:
    """A step before its references are checked."""

    step: Step
    raw: dict[str, Any]


def _steps(raw: list[Any], where: str, *, condition: str, branch: str) -> list[_Draft]:
    drafts: list[_Draft] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValidationError(
                f"{where}[{index}]: must be a step object", field=f"{where}[{index}]"
            )
        name = item.get("Name")
        if not isinstance(name, str) or not STEP_NAME.fullmatch(name):
            raise ValidationError(
                f"{where}[{index}].Name: 1-256 letters, digits, hyphens and underscores",
                field=f"{where}[{index}].Name",
            )
        at = f"{where}[{name}]"
        drafts.extend(_step(item, name, at, condition=condition, branch=branch))
    return drafts


def _step(item: dict[str, Any], name: str, at: str, *, condition: str, branch: str) -> list[_Draft]:
    written = item.get("Type")
    kind = STEP_TYPES.get(written) if isinstance(written, str) else None
    if kind is None:
        raise ValidationError(
            f"{at}.Type: {written!r} is not a step type the studio runs "
            f"(one of {', '.join(sorted(STEP_TYPES))})",
            field=f"{at}.Type",
        )
    arguments = item.get("Arguments", {})
    if not isinstance(arguments, dict):
        raise ValidationError(f"{at}.Arguments: must be an object", field=f"{at}.Arguments")
    depends_on = item.get("DependsOn", [])
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise ValidationError(f"{at}.DependsOn: a list of step names", field=f"{at}.DependsOn")
    for key in ("DisplayName", "Description"):
        if not isinstance(item.get(key, ""), str):
            raise ValidationError(f"{at}.{key}: must be a string", field=f"{at}.{key}")
    property_files = _property_files(
        item.get("PropertyFiles", []), kind, arguments, f"{at}.PropertyFiles"
    )
    nested: list[_Draft] = []
    if_names: tuple[str, ...] = ()
    else_names: tuple[str, ...] = ()
    if kind == StepType.CONDITION:
        _conditions(arguments.get("Conditions"), f"{at}.Arguments.Conditions")
        for key in ("IfSteps", "ElseSteps"):
            branch_steps = arguments.get(key, [])
            if not isinstance(branch_steps, list):
                raise ValidationError(
                    f"{at}.Arguments.{key}: a list of steps", field=f"{at}.Arguments.{key}"
                )
            drafts = _steps(branch_steps, f"{at}.Arguments.{key}", condition=name, branch=key)
            direct = tuple(d.step.name for d in drafts if d.step.condition == name)
            if key == "IfSteps":
                if_names = direct
            else:
                else_names = direct
            nested.extend(drafts)
    elif kind == StepType.FAIL:
        message = arguments.get("ErrorMessage", "")
        if not isinstance(message, str) and not _is_expression(message):
            raise ValidationError(
                f"{at}.Arguments.ErrorMessage: a string or an expression",
                field=f"{at}.Arguments.ErrorMessage",
            )
    step = Step(
        name=name,
        type=kind,
        arguments=arguments,
        depends_on=tuple(depends_on),
        property_files=property_files,
        cache=_cache_config(item.get("CacheConfig"), f"{at}.CacheConfig"),
        retry_policies=_retry_policies(item.get("RetryPolicies", []), f"{at}.RetryPolicies"),
        display_name=item.get("DisplayName", ""),
        description=item.get("Description", ""),
        is_function=kind == StepType.TRAINING and _is_function_step(arguments),
        condition=condition,
        branch=branch,
        if_steps=if_names,
        else_steps=else_names,
        location=at,
    )
    return [_Draft(step, item), *nested]


def _is_function_step(arguments: Mapping[str, Any]) -> bool:
    channels = arguments.get("InputDataConfig", [])
    if isinstance(channels, list) and any(
        isinstance(c, dict) and c.get("ChannelName") == FUNCTION_CHANNEL for c in channels
    ):
        return True
    spec = arguments.get("AlgorithmSpecification", {})
    container_arguments = spec.get("ContainerArguments", []) if isinstance(spec, dict) else []
    return isinstance(container_arguments, list) and FUNCTION_ARGUMENT in container_arguments


def _property_files(
    raw: object, kind: str, arguments: Mapping[str, Any], where: str
) -> tuple[PropertyFile, ...]:
    if not isinstance(raw, list):
        raise ValidationError(f"{where}: must be a list", field=where)
    if raw and kind != StepType.PROCESSING:
        raise ValidationError(f"{where}: only Processing steps have property files", field=where)
    outputs = arguments.get("ProcessingOutputConfig", {})
    outputs = outputs.get("Outputs", []) if isinstance(outputs, dict) else []
    output_names = {o.get("OutputName") for o in outputs if isinstance(o, dict)}
    files: list[PropertyFile] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{at}: must be an object", field=at)
        values: dict[str, str] = {}
        for key in ("PropertyFileName", "OutputName", "FilePath"):
            value = item.get(key)
            if not isinstance(value, str) or not value:
                raise ValidationError(f"{at}.{key}: a non-empty string", field=f"{at}.{key}")
            values[key] = value
        if any(f.name == values["PropertyFileName"] for f in files):
            raise ValidationError(
                f"{at}.PropertyFileName: two property files named {values['PropertyFileName']!r}",
                field=f"{at}.PropertyFileName",
            )
        if values["OutputName"] not in output_names:
            raise ValidationError(
                f"{at}.OutputName: {values['OutputName']!r} is not one of the step's "
                "ProcessingOutputConfig.Outputs",
                field=f"{at}.OutputName",
            )
        files.append(
            PropertyFile(values["PropertyFileName"], values["OutputName"], values["FilePath"])
        )
    return tuple(files)


def _conditions(raw: object, where: str) -> None:
    if not isinstance(raw, list) or not raw:
        raise ValidationError(f"{where}: a list of at least one condition", field=where)
    for index, condition in enumerate(raw):
        _condition(condition, f"{where}[{index}]")


def _condition(condition: object, at: str) -> None:
    if not isinstance(condition, dict):
        raise ValidationError(f"{at}: must be a condition object", field=at)
    kind = condition.get("Type")
    if kind not in CONDITION_TYPES:
        raise ValidationError(
            f"{at}.Type: one of {', '.join(sorted(CONDITION_TYPES))}, got {kind!r}",
            field=f"{at}.Type",
        )
    if kind in COMPARISONS:
        for key in ("LeftValue", "RightValue"):
            if key not in condition:
                raise ValidationError(f"{at}.{key}: required for {kind}", field=f"{at}.{key}")
    elif kind == "In":
        if "QueryValue" not in condition:
            raise ValidationError(f"{at}.QueryValue: required for In", field=f"{at}.QueryValue")
        if not isinstance(condition.get("Values"), list):
            raise ValidationError(f"{at}.Values: a list, required for In", field=f"{at}.Values")
    elif kind == "Not":
        _condition(condition.get("Condition"), f"{at}.Condition")
    else:  # Or
        _conditions(condition.get("Conditions"), f"{at}.Conditions")


_DURATION = re.compile(
    r"P?(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.IGNORECASE,
)


def duration_parse(text: str) -> timedelta:
    """An ISO-8601 duration as SageMaker's ExpireAfter takes it: `PT1H`, `P30D`, and its
    short forms `30d`, `T16m`, `30dT5h`. A year counts 365 days, a month 30. ValueError
    when it is not one."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groupdict().values()):
        raise ValueError(f"{text!r} is not an ISO-8601 duration (like PT1H, P30D, 30d, T16m)")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(
        days=parts["years"] * 365 + parts["months"] * 30 + parts["weeks"] * 7 + parts["days"],
        hours=parts["hours"],
        minutes=parts["minutes"],
        seconds=parts["seconds"],
    )


def _cache_config(raw: object, where: str) -> CacheConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: must be an object", field=where)
    enabled = raw.get("Enabled", False)
    if not isinstance(enabled, bool):
        raise ValidationError(f"{where}.Enabled: true or false", field=f"{where}.Enabled")
    text = raw.get("ExpireAfter")
    if text is None:
        return CacheConfig(enabled, None)
    if not isinstance(text, str):
        raise ValidationError(
            f"{where}.ExpireAfter: an ISO-8601 duration", field=f"{where}.ExpireAfter"
        )
    try:
        return CacheConfig(enabled, duration_parse(text), text)
    except ValueError as exc:
        raise ValidationError(f"{where}.ExpireAfter: {exc}", field=f"{where}.ExpireAfter") from exc


def _retry_policies(raw: object, where: str) -> tuple[RetryPolicy, ...]:
    if not isinstance(raw, list):
        raise ValidationError(f"{where}: must be a list", field=where)
    policies: list[RetryPolicy] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{at}: must be an object", field=at)
        types = item.get("ExceptionType")
        if not isinstance(types, list) or not types:
            raise ValidationError(
                f"{at}.ExceptionType: a list of exception types", field=f"{at}.ExceptionType"
            )
        for kind in types:
            if kind not in RETRY_EXCEPTIONS:
                raise ValidationError(
                    f"{at}.ExceptionType: {kind!r} is not one of {', '.join(sorted(RETRY_EXCEPTIONS))}",
                    field=f"{at}.ExceptionType",
                )
        interval = _whole(item, "IntervalSeconds", 1, 1, MAX_RETRY_INTERVAL, at)
        rate = item.get("BackoffRate", 2.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
            raise ValidationError(
                f"{at}.BackoffRate: a number of at least 0", field=f"{at}.BackoffRate"
            )
        if "MaxAttempts" in item and "ExpireAfterMin" in item:
            raise ValidationError(
                f"{at}.ExpireAfterMin: give MaxAttempts or ExpireAfterMin, not both",
                field=f"{at}.ExpireAfterMin",
            )
        expire = item.get("ExpireAfterMin")
        if expire is not None:
            policies.append(
                RetryPolicy(
                    tuple(types),
                    interval,
                    float(rate),
                    None,
                    _whole(item, "ExpireAfterMin", 0, 1, MAX_RETRY_EXPIRE_MIN, at),
                )
            )
        else:
            attempts = _whole(item, "MaxAttempts", 5, 1, MAX_RETRY_ATTEMPTS, at)
            policies.append(RetryPolicy(tuple(types), interval, float(rate), attempts))
    return tuple(policies)


def _whole(item: Mapping[str, Any], key: str, default: int, low: int, high: int, at: str) -> int:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"{at}.{key}: a whole number from {low} to {high}", field=f"{at}.{key}"
        )
    return value


# --- references -------------------------------------------------------------------------------


def _is_expression(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _EXPRESSION_KEYS


@dataclass(frozen=True)
class Reference:
    """One `{"Get": ...}` in a document, where it is."""

    target: str
    location: str


def references(value: object, where: str) -> Iterator[Reference]:
    """Every Get in `value` (Std:Join's values and Std:JsonGet's property file included),
    with where it is; a malformed function is refused here."""
    if isinstance(value, dict):
        if _is_expression(value):
            key, body = next(iter(value.items()))
            at = f"{where}.{key}"
            if key == "Get":
                if not isinstance(body, str) or not body:
                    raise ValidationError(f"{at}: a reference like Parameters.X", field=at)
                yield Reference(body, at)
            elif key == "Std:Join":
                if not isinstance(body, dict) or not isinstance(body.get("Values"), list):
                    raise ValidationError(f"{at}: {{On, Values}} with a list of Values", field=at)
                if not isinstance(body.get("On", ""), str):
                    raise ValidationError(f"{at}.On: a string", field=f"{at}.On")
                yield from references(body["Values"], f"{at}.Values")
            else:
                yield from _json_get_references(body, at)
            return
        for key, item in value.items():
            yield from references(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from references(item, f"{where}[{index}]")


def _json_get_references(body: object, at: str) -> Iterator[Reference]:
    if not isinstance(body, dict) or not isinstance(body.get("Path"), str):
        raise ValidationError(f"{at}: {{PropertyFile or S3Uri, Path}}", field=at)
    try:
        json_path_parse(body["Path"])
    except ValueError as exc:
        raise ValidationError(f"{at}.Path: {exc}", field=f"{at}.Path") from exc
    source = body.get("PropertyFile")
    if source is not None:
        if isinstance(source, str):
            # The bare name of a property file: the step that declares it is found later.
            yield Reference(f"PropertyFiles.{source}", f"{at}.PropertyFile")
        elif isinstance(source, dict) and isinstance(source.get("Get"), str):
            target = source["Get"]
            if ".PropertyFiles." not in target:
                raise ValidationError(
                    f"{at}.PropertyFile: Steps.<step>.PropertyFiles.<file>, got {target!r}",
                    field=f"{at}.PropertyFile",
                )
            yield Reference(target, f"{at}.PropertyFile.Get")
        else:
            raise ValidationError(
                f"{at}.PropertyFile: a Get or a property file's name", field=f"{at}.PropertyFile"
            )
    elif "S3Uri" in body:
        yield from references(body["S3Uri"], f"{at}.S3Uri")
    else:
        raise ValidationError(f"{at}: PropertyFile or S3Uri is required", field=at)


def _split_step_reference(target: str) -> tuple[str, str]:
    """`Steps.Train.ModelArtifacts.S3ModelArtifacts` → ("Train", "ModelArtifacts.S3ModelArtifacts")."""
    rest = target.removeprefix("Steps.")
    name, _, path = rest.partition(".")
    return name, path


def _link(drafts: list[_Draft], parameters: Mapping[str, Parameter]) -> list[Step]:
    """Check every reference and DependsOn against the steps and parameters; each step's
    dependencies are DependsOn, the steps its expressions reference, and its condition."""
    by_name: dict[str, _Draft] = {}
    for draft in drafts:
        name = draft.step.name
        if name in by_name:
            raise ValidationError(
                f"{draft.step.location}: two steps named {name!r} "
                f"(the other at {by_name[name].step.location})",
                field=draft.step.location,
            )
        by_name[name] = draft
    property_file_steps: dict[str, list[str]] = {}
    for draft in drafts:
        for pf in draft.step.property_files:
            property_file_steps.setdefault(pf.name, []).append(draft.step.name)
    linked: list[Step] = []
    for draft in drafts:
        step = draft.step
        needed: set[str] = set()
        for index, name in enumerate(step.depends_on):
            if name not in by_name:
                at = f"{step.location}.DependsOn[{index}]"
                raise ValidationError(f"{at}: no step named {name!r}", field=at)
            needed.add(name)
        scanned: Any = dict(step.arguments)
        if step.type == StepType.CONDITION:
            # The branches' steps are steps of their own, checked as such.
            scanned = {"Conditions": step.arguments.get("Conditions")}
        for reference in references(scanned, f"{step.location}.Arguments"):
            referenced = _check_reference(reference, by_name, parameters, property_file_steps)
            if referenced:
                needed.add(referenced)
        if step.condition:
            needed.add(step.condition)
        linked.append(replace(step, dependencies=frozenset(needed)))
    return linked


def _check_reference(
    reference: Reference,
    steps: Mapping[str, _Draft],
    parameters: Mapping[str, Parameter],
    property_file_steps: Mapping[str, list[str]],
) -> str:
    """The step a reference depends on ("" for none); a ValidationError when it names
    something the definition does not have."""
    target, at = reference.target, reference.location
    head, _, rest = target.partition(".")
    if head == "Parameters":
        if rest not in parameters:
            raise ValidationError(f"{at}: no parameter named {rest!r}", field=at)
        return ""
    if head == "Execution":
        if rest not in EXECUTION_VARIABLES:
            raise ValidationError(
                f"{at}: {target!r} is not an execution variable "
                f"({', '.join(sorted(EXECUTION_VARIABLES))})",
                field=at,
            )
        return ""
    if head == "PipelineExperimentConfig":
        if rest not in EXPERIMENT_VARIABLES:
            raise ValidationError(f"{at}: {target!r}: ExperimentName or TrialName", field=at)
        return ""
    if head == "PropertyFiles":  # a bare property file name in a JsonGet
        owners = property_file_steps.get(rest, [])
        if len(owners) != 1:
            problem = "no step declares" if not owners else "more than one step declares"
            raise ValidationError(f"{at}: {problem} a property file named {rest!r}", field=at)
        return owners[0]
    if head != "Steps":
        raise ValidationError(
            f"{at}: {target!r} is not a reference to Parameters, Steps, Execution or "
            "PipelineExperimentConfig",
            field=at,
        )
    name, path = _split_step_reference(target)
    draft = steps.get(name)
    if draft is None:
        raise ValidationError(f"{at}: no step named {name!r}", field=at)
    if not path:
        raise ValidationError(f"{at}: {target!r} names a step but none of its properties", field=at)
    root = re.split(r"[.\[]", path, maxsplit=1)[0]
    kind = draft.step.type
    if root not in PROPERTY_ROOTS[kind]:
        raise ValidationError(
            f"{at}: a {kind} step has no property {root!r} (step {name!r})", field=at
        )
    if root == "PropertyFiles":
        file_name = path.removeprefix("PropertyFiles.")
        if file_name not in {pf.name for pf in draft.step.property_files}:
            raise ValidationError(
                f"{at}: step {name!r} declares no property file named {file_name!r}", field=at
            )
    else:
        try:
            json_path_parse(path)
        except ValueError as exc:
            raise ValidationError(f"{at}: {exc}", field=at) from exc
    return name


def _ordered(steps: list[Step]) -> list[Step]:
    """The steps in an order where each comes after what it depends on (the document's order
    among equals); a cycle is refused with the steps in it."""
    by_name = {s.name: s for s in steps}
    order: list[Step] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done
    trail: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name) :], name]
            raise ValidationError(
                f"{ROOT}.Steps: a cycle of dependencies: {' -> '.join(cycle)}",
                field=by_name[name].location,
            )
        state[name] = 1
        trail.append(name)
        for dependency in sorted(by_name[name].dependencies, key=list(by_name).index):
            visit(dependency)
        trail.pop()
        state[name] = 2
        order.append(by_name[name])

    for step in steps:
        visit(step.name)
    return order


# --- JSON paths -----------------------------------------------------------------------------

_NAME_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-:]*")
_BRACKET_SEGMENT = re.compile(r"""\[(?:(?P<index>-?\d+)|(?P<quote>['"])(?P<key>.*?)(?P=quote))\]""")


def json_path_parse(path: str) -> list[str | int]:
    """`a.b[0]['c d']` → ["a", "b", 0, "c d"]; a leading `$` or `$.` is allowed. ValueError
    when it is not such a path."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].removeprefix(".")
    if not text:
        raise ValueError(f"empty path {path!r}")
    segments: list[str | int] = []
    position = 0
    while position < len(text):
        if text[position] == "[":
            bracket = _BRACKET_SEGMENT.match(text, position)
            if bracket is None:
                raise ValueError(
                    f"{path!r} is not a path like a.b[0] (an unclosed or empty [...] at {text[position:]!r})"
                )
            index = bracket["index"]
            segments.append(int(index) if index is not None else bracket["key"])
            position = bracket.end()
            continue
        if position > 0:
            if text[position] != ".":
                raise ValueError(f"{path!r} is not a path like a.b[0] (at {text[position:]!r})")
            position += 1
        name = _NAME_SEGMENT.match(text, position)
        if name is None:
            raise ValueError(f"{path!r} is not a path like a.b[0] (at {text[position:]!r})")
        segments.append(name.group())
        position = name.end()
    return segments


# --- evaluation -----------------------------------------------------------------------------


class ExpressionError(ValidationError):
    """An expression that cannot be evaluated with what an execution has (a JsonGet path
    that is not in its file, a step property not there): the step using it fails with this."""

    code = "expression"


@dataclass
class Context:
    """What an execution knows when it evaluates: the parameters' values, each finished
    step's properties (its Describe* document), the property files read, execution variables."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # (step name, property file name) → the file's parsed JSON
    property_files: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    execution: Mapping[str, Any] = field(default_factory=dict)
    experiment: Mapping[str, Any] = field(default_factory=dict)
    # Reads the JSON at an s3:// URI (for JsonGet's S3Uri form); None: not available.
    read_json: Callable[[str], Any] | None = None


def resolve(expression: object, context: Context) -> Any:
    """The value of `expression` (a literal, a Get, Std:Join, Std:JsonGet, or a list or object
    holding them), evaluated in `context`. ExpressionError names what could not be found."""
    if isinstance(expression, list):
        return [resolve(item, context) for item in expression]
    if not isinstance(expression, dict):
        return expression
    if not _is_expression(expression):
        return {key: resolve(value, context) for key, value in expression.items()}
    key, body = next(iter(expression.items()))
    if key == "Get":
        return _get(str(body), context)
    if key == "Std:Join":
        values = [resolve(v, context) for v in body.get("Values", [])]
        return str(body.get("On", "")).join(_text(v) for v in values)
    return _json_get(body, context)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _get(target: str, context: Context) -> Any:
    head, _, rest = target.partition(".")
    if head == "Parameters":
        if rest not in context.parameters:
            raise ExpressionError(f"{target}: no value for parameter {rest!r}")
        return context.parameters[rest]
    if head == "Execution":
        if rest not in context.execution:
            raise ExpressionError(f"{target}: the execution has no {rest!r}")
        return context.execution[rest]
    if head == "PipelineExperimentConfig":
        if rest not in context.experiment:
            raise ExpressionError(f"{target}: no {rest!r} in the experiment config")
        return context.experiment[rest]
    if head == "Steps":
        name, path = _split_step_reference(target)
        if name not in context.steps:
            raise ExpressionError(f"{target}: step {name!r} has no properties (not run yet?)")
        try:
            return path_value(context.steps[name], json_path_parse(path))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ExpressionError(
                f"{target}: step {name!r} has no property {path!r} ({exc})"
            ) from exc
    raise ExpressionError(f"{target}: not a reference")


def _json_get(body: Mapping[str, Any], context: Context) -> Any:
    path = str(body.get("Path", ""))
    source = body.get("PropertyFile")
    if source is not None:
        key = _property_file_key(source, context)
        if key not in context.property_files:
            raise ExpressionError(
                f"JsonGet: property file {key[1]!r} of step {key[0]!r} was not read"
            )
        document, where = (
            context.property_files[key],
            f"property file {key[1]!r} of step {key[0]!r}",
        )
    else:
        uri = _text(resolve(body.get("S3Uri"), context))
        if context.read_json is None:
            raise ExpressionError(f"JsonGet: cannot read {uri}")
        document, where = context.read_json(uri), uri
    try:
        return path_value(document, json_path_parse(path))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ExpressionError(f"JsonGet: path {path!r} is not in {where} ({exc})") from exc


def _property_file_key(source: object, context: Context) -> tuple[str, str]:
    if isinstance(source, dict):
        name, path = _split_step_reference(str(source.get("Get", "")))
        return name, path.removeprefix("PropertyFiles.")
    owners = [key for key in context.property_files if key[1] == source]
    if len(owners) != 1:
        raise ExpressionError(f"JsonGet: property file {source!r} was not read")
    return owners[0]


def path_value(document: Any, segments: Sequence[str | int]) -> Any:
    """The value at `segments` in a JSON document; KeyError/IndexError/TypeError naming the
    first segment that is not there."""
    value = document
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(value, list):
                raise TypeError(f"[{segment}] of a value that is not a list")
            value = value[segment]
        elif isinstance(value, dict):
            if segment not in value:
                raise KeyError(f"no {segment!r}")
            value = value[segment]
        elif isinstance(value, list):
            # SageMaker's lists keyed by name: Outputs['train'], FinalMetricDataList['acc'].
            matches = [v for v in value if isinstance(v, dict) and segment in _list_keys(v)]
            if not matches:
                raise KeyError(f"no item {segment!r}")
            value = matches[0]
        else:
            raise TypeError(f"{segment!r} of a value that is not an object")
    return value


def _list_keys(item: Mapping[str, Any]) -> set[Any]:
    return {item.get(k) for k in ("OutputName", "InputName", "MetricName", "Name", "ChannelName")}


def condition_holds(condition: Mapping[str, Any], context: Context) -> bool:
    """Whether one condition object holds in `context` (a Condition step's Conditions must all)."""
    kind = condition["Type"]
    if kind == "Not":
        return not condition_holds(condition["Condition"], context)
    if kind == "Or":
        return any(condition_holds(c, context) for c in condition["Conditions"])
    if kind == "In":
        value = resolve(condition["QueryValue"], context)
        return value in resolve(condition["Values"], context)
    left = resolve(condition["LeftValue"], context)
    right = resolve(condition["RightValue"], context)
    if kind == "Equals":
        return bool(left == right)
    try:
        if kind == "GreaterThan":
            return bool(left > right)
        if kind == "GreaterThanOrEqualTo":
            return bool(left >= right)
        if kind == "LessThan":
            return bool(left < right)
        return bool(left <= right)
    except TypeError as exc:
        raise ExpressionError(f"{kind}: cannot compare {left!r} with {right!r}") from exc


# --- parameter values -----------------------------------------------------------------------


def parameter_values(definition: Definition, given: Mapping[str, object]) -> dict[str, Any]:
    """The typed value of every parameter for an execution: `given` (JSON values, or text as
    a command line gives it) over the defaults. ValidationError (field `parameters.<name>`)
    for an unknown name, a missing value or one of the wrong type."""
    known = {p.name for p in definition.parameters}
    for name in given:
        if name not in known:
            raise ValidationError(
                f"parameters.{name}: the pipeline has no such parameter", field=f"parameters.{name}"
            )
    values: dict[str, Any] = {}
    for parameter in definition.parameters:
        at = f"parameters.{parameter.name}"
        if parameter.name not in given:
            if parameter.default is None:
                raise ValidationError(f"{at}: required (the parameter has no default)", field=at)
            values[parameter.name] = parameter.default
            continue
        value = _typed(given[parameter.name], parameter.type)
        if value is None:
            raise ValidationError(
                f"{at}: {given[parameter.name]!r} is not a {parameter.type}", field=at
            )
        if isinstance(value, str) and len(value) > PARAMETER_VALUE_LIMIT:
            raise ValidationError(f"{at}: at most {PARAMETER_VALUE_LIMIT} characters", field=at)
        if parameter.enum_values and value not in parameter.enum_values:
            raise ValidationError(
                f"{at}: {value!r} is not one of {list(parameter.enum_values)}", field=at
            )
        values[parameter.name] = value
    return values


def _typed(value: object, kind: str) -> Any:
    if value_is_of_type(value, kind):
        return float(value) if kind == "Float" else value  # type: ignore[arg-type]
    if not isinstance(value, str):
        return None
    text = value.strip()
    if kind == "String":
        return value
    if kind == "Boolean":
        return {"true": True, "false": False}.get(text.lower())
    try:
        return int(text) if kind == "Integer" else float(text)
    except ValueError:
        return None
