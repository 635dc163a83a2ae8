"""Parsing and checking SageMaker pipeline definitions: what the SDK writes is accepted, and
every check refuses with a ValidationError naming where in the document the problem is."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.definition import (
    MAX_DEFINITION_BYTES,
    MAX_STEPS,
    Context,
    ExpressionError,
    StepType,
    condition_holds,
    definition_digest,
    definition_parse,
    duration_parse,
    json_path_parse,
    parameter_values,
    resolve,
)
from studio.errors import ValidationError
from tests.pipelines.support import (
    HANDWRITTEN_DEFINITIONS,
    SDK_DEFINITIONS,
    canonical,
    small,
    step,
)

# --- accepted -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SDK_DEFINITIONS, ids=lambda p: p.stem)
def test_a_definition_written_by_the_sagemaker_sdk_is_accepted(path: Path) -> None:
    text = path.read_text()
    definition = definition_parse(text)
    assert definition.steps
    assert definition.document == json.loads(text)


def test_the_sdk_fixtures_are_there() -> None:
    """The SDK's definitions (generated on feat/sdkdefs) are in the tree: the test above
    cannot pass by finding none."""
    assert {p.stem for p in SDK_DEFINITIONS} >= {"canonical", "function_step", "transform"}


@pytest.mark.parametrize("path", HANDWRITTEN_DEFINITIONS, ids=lambda p: p.stem)
def test_a_handwritten_sdk_shaped_definition_is_accepted(path: Path) -> None:
    assert definition_parse(path.read_text()).steps


def test_the_canonical_pipeline_has_its_dependencies_from_references_depends_on_and_branches() -> (
    None
):
    definition = definition_parse(canonical())
    deps = {s.name: s.dependencies for s in definition.steps}
    assert deps["PreprocessData"] == frozenset()
    assert deps["TrainModel"] == {"PreprocessData"}
    assert deps["EvaluateModel"] == {"PreprocessData", "TrainModel"}
    assert deps["CheckAccuracy"] == {"EvaluateModel"}  # through the JsonGet's property file
    assert deps["RegisterAbalone-RegisterModel"] == {"CheckAccuracy", "TrainModel"}
    assert deps["BatchScore"] == {"CheckAccuracy", "AbaloneModel-CreateModel", "PreprocessData"}
    assert deps["AccuracyTooLow"] == {"CheckAccuracy", "EvaluateModel"}
    order = [s.name for s in definition.steps]
    for name, needed in deps.items():
        assert all(order.index(d) < order.index(name) for d in needed)


def test_the_typed_model_holds_parameters_branches_cache_retries_and_property_files() -> None:
    definition = definition_parse(canonical())
    assert definition.parameter("AccuracyThreshold").type == "Float"
    assert definition.parameter("TrainingEpochs").default == 10
    check = definition.step("CheckAccuracy")
    assert check.type == StepType.CONDITION
    assert check.if_steps == (
        "RegisterAbalone-RegisterModel",
        "AbaloneModel-CreateModel",
        "BatchScore",
    )
    assert check.else_steps == ("AccuracyTooLow",)
    assert definition.step("AccuracyTooLow").branch == "ElseSteps"
    assert definition.step("AbaloneModel-CreateModel").type == StepType.MODEL
    preprocess = definition.step("PreprocessData")
    assert preprocess.cache is not None
    assert preprocess.cache.enabled
    assert preprocess.cache.expire_after == timedelta(hours=1)
    retry = definition.step("TrainModel").retry_policies[0]
    assert (retry.max_attempts, retry.backoff_rate) == (3, 2.0)
    (report,) = definition.step("EvaluateModel").property_files
    assert (report.name, report.output_name, report.file_path) == (
        "EvaluationReport",
        "evaluation",
        "evaluation.json",
    )


def test_a_python_function_step_is_a_training_step_marked_as_a_function() -> None:
    document = json.loads((HANDWRITTEN_DEFINITIONS[0].parent / "function_steps.json").read_text())
    definition = definition_parse(document)
    assert definition.step("generate").is_function
    assert definition.step("generate").type == StepType.TRAINING
    # A JsonGet on the function's S3 results makes the condition depend on it.
    assert definition.step("big-enough").dependencies == {"generate"}
    assert not definition_parse(canonical()).step("TrainModel").is_function


def test_create_model_is_taken_as_the_sdk_model_step() -> None:
    document = canonical()
    step(document, "AbaloneModel-CreateModel")["Type"] = "CreateModel"
    assert definition_parse(document).step("AbaloneModel-CreateModel").type == StepType.MODEL


def test_the_digest_ignores_key_order_and_white_space() -> None:
    document = canonical()
    reordered = dict(reversed(list(document.items())))
    assert definition_digest(document) == definition_digest(reordered)
    assert definition_parse(json.dumps(document, indent=4)).digest == definition_digest(document)


# --- refused ---------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(name: str, key: str, value: Any) -> Mutation:
    return lambda d: step(d, name).__setitem__(key, value)


def _args(name: str, key: str, value: Any) -> Mutation:
    return lambda d: step(d, name)["Arguments"].__setitem__(key, value)


def _condition(value: Any) -> Mutation:
    return _args("CheckAccuracy", "Conditions", [value])


GET_THRESHOLD = {"Get": "Parameters.AccuracyThreshold"}
REFUSALS: list[Any] = [
    pytest.param(
        lambda d: d.__setitem__("Version", "2019-01-01"),
        "definition.Version",
        "2020-12-01",
        id="version",
    ),
    pytest.param(
        lambda d: d.__setitem__("Extra", 1), "definition.Extra", "not a member", id="unknown-key"
    ),
    pytest.param(
        lambda d: d.__setitem__("Steps", []), "definition.Steps", "at least one", id="no-steps"
    ),
    pytest.param(
        _set("TrainModel", "Type", "Lambda"),
        "definition.Steps[TrainModel].Type",
        "'Lambda' is not a step type",
        id="unknown-step-type",
    ),
    pytest.param(
        _set("EvaluateModel", "Name", "TrainModel"),
        "definition.Steps[TrainModel]",
        "two steps named 'TrainModel'",
        id="duplicate-step",
    ),
    pytest.param(
        _set("AccuracyTooLow", "Name", "TrainModel"),
        "definition.Steps[CheckAccuracy].Arguments.ElseSteps[TrainModel]",
        "two steps named",
        id="duplicate-step-in-a-branch",
    ),
    pytest.param(
        _set("TrainModel", "Name", "bad name!"),
        "definition.Steps[1].Name",
        "letters, digits",
        id="step-name",
    ),
    pytest.param(
        _set("TrainModel", "DependsOn", ["Nowhere"]),
        "definition.Steps[TrainModel].DependsOn[0]",
        "no step named 'Nowhere'",
        id="depends-on-unknown-step",
    ),
    pytest.param(
        lambda d: step(d, "TrainModel")["Arguments"]["InputDataConfig"][0]["DataSource"][
            "S3DataSource"
        ].__setitem__("S3Uri", {"Get": "Steps.Preprocess.ProcessingOutputConfig"}),
        "definition.Steps[TrainModel].Arguments.InputDataConfig[0].DataSource.S3DataSource"
        ".S3Uri.Get",
        "no step named 'Preprocess'",
        id="reference-to-unknown-step",
    ),
    pytest.param(
        _args("TrainModel", "HyperParameters", {"x": {"Get": "Parameters.Nope"}}),
        "definition.Steps[TrainModel].Arguments.HyperParameters.x.Get",
        "no parameter named 'Nope'",
        id="reference-to-unknown-parameter",
    ),
    pytest.param(
        _args(
            "TrainModel",
            "HyperParameters",
            {"x": {"Std:Join": {"On": ",", "Values": ["a", {"Get": "Parameters.Nope"}]}}},
        ),
        "definition.Steps[TrainModel].Arguments.HyperParameters.x.Std:Join.Values[1].Get",
        "no parameter named 'Nope'",
        id="unknown-parameter-inside-a-join",
    ),
    pytest.param(
        _condition(
            {
                "Type": "GreaterThan",
                "LeftValue": {
                    "Std:JsonGet": {
                        "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.Missing"},
                        "Path": "a",
                    }
                },
                "RightValue": 1,
            }
        ),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].LeftValue.Std:JsonGet"
        ".PropertyFile.Get",
        "declares no property file named 'Missing'",
        id="unknown-property-file",
    ),
    pytest.param(
        _condition(
            {
                "Type": "GreaterThan",
                "LeftValue": {"Std:JsonGet": {"PropertyFile": "Missing", "Path": "a"}},
                "RightValue": 1,
            }
        ),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].LeftValue.Std:JsonGet"
        ".PropertyFile",
        "no step declares a property file named 'Missing'",
        id="unknown-property-file-by-name",
    ),
    pytest.param(
        _args("BatchScore", "ModelName", {"Get": "Steps.TrainModel.ModelName"}),
        "definition.Steps[CheckAccuracy].Arguments.IfSteps[BatchScore].Arguments.ModelName.Get",
        "a Training step has no property 'ModelName'",
        id="property-the-step-type-cannot-have",
    ),
    pytest.param(
        _args("BatchScore", "ModelName", {"Get": "Steps.PreprocessData.ModelArtifacts.X"}),
        "definition.Steps[CheckAccuracy].Arguments.IfSteps[BatchScore].Arguments.ModelName.Get",
        "a Processing step has no property 'ModelArtifacts'",
        id="processing-has-no-model-artifacts",
    ),
    pytest.param(
        _args("BatchScore", "ModelName", {"Get": "Steps.TrainModel"}),
        "definition.Steps[CheckAccuracy].Arguments.IfSteps[BatchScore].Arguments.ModelName.Get",
        "none of its properties",
        id="step-without-a-property",
    ),
    pytest.param(
        _args("BatchScore", "ModelName", {"Get": "Execution.Nope"}),
        "definition.Steps[CheckAccuracy].Arguments.IfSteps[BatchScore].Arguments.ModelName.Get",
        "not an execution variable",
        id="unknown-execution-variable",
    ),
    pytest.param(
        _args("BatchScore", "ModelName", {"Get": "Somewhere.Else"}),
        "definition.Steps[CheckAccuracy].Arguments.IfSteps[BatchScore].Arguments.ModelName.Get",
        "not a reference to Parameters",
        id="unknown-reference-root",
    ),
    pytest.param(
        _args("BatchScore", "ModelName", {"Std:Join": {"On": ",", "Values": "a"}}),
        "definition.Steps[CheckAccuracy].Arguments.IfSteps[BatchScore].Arguments.ModelName"
        ".Std:Join",
        "Values",
        id="malformed-join",
    ),
    pytest.param(
        _condition(
            {
                "Type": "Equals",
                "LeftValue": {"Std:JsonGet": {"PropertyFile": "EvaluationReport", "Path": "a..b"}},
                "RightValue": 1,
            }
        ),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].LeftValue.Std:JsonGet.Path",
        "not a path",
        id="malformed-json-path",
    ),
    pytest.param(
        _condition(
            {"Type": "Equals", "LeftValue": {"Std:JsonGet": {"Path": "a"}}, "RightValue": 1}
        ),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].LeftValue.Std:JsonGet",
        "PropertyFile or S3Uri",
        id="json-get-without-a-source",
    ),
    pytest.param(
        _condition({"Type": "Between", "LeftValue": 1, "RightValue": 2}),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].Type",
        "Between",
        id="unknown-condition-type",
    ),
    pytest.param(
        _condition({"Type": "LessThan", "LeftValue": 1}),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].RightValue",
        "required",
        id="comparison-without-right-value",
    ),
    pytest.param(
        _condition({"Type": "In", "QueryValue": 1, "Values": 3}),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].Values",
        "a list",
        id="in-without-values",
    ),
    pytest.param(
        _condition({"Type": "Not", "Condition": {"Type": "Nope"}}),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].Condition.Type",
        "Nope",
        id="not-with-a-bad-condition",
    ),
    pytest.param(
        _condition({"Type": "Or", "Conditions": []}),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].Conditions",
        "at least one",
        id="empty-or",
    ),
    pytest.param(
        _condition({"Type": "Equals", "LeftValue": {"Get": "Parameters.Nope"}, "RightValue": 1}),
        "definition.Steps[CheckAccuracy].Arguments.Conditions[0].LeftValue.Get",
        "no parameter named 'Nope'",
        id="unknown-parameter-in-a-condition",
    ),
    pytest.param(
        _args("AccuracyTooLow", "ErrorMessage", 42),
        "definition.Steps[CheckAccuracy].Arguments.ElseSteps[AccuracyTooLow].Arguments"
        ".ErrorMessage",
        "a string or an expression",
        id="fail-message",
    ),
    pytest.param(
        _set("PreprocessData", "CacheConfig", {"Enabled": True, "ExpireAfter": "an hour"}),
        "definition.Steps[PreprocessData].CacheConfig.ExpireAfter",
        "ISO-8601",
        id="cache-expiry",
    ),
    pytest.param(
        _set("PreprocessData", "CacheConfig", {"Enabled": "yes"}),
        "definition.Steps[PreprocessData].CacheConfig.Enabled",
        "true or false",
        id="cache-enabled",
    ),
    pytest.param(
        _set("TrainModel", "RetryPolicies", [{"ExceptionType": ["Step.NOPE"]}]),
        "definition.Steps[TrainModel].RetryPolicies[0].ExceptionType",
        "Step.NOPE",
        id="retry-exception-type",
    ),
    pytest.param(
        _set(
            "TrainModel",
            "RetryPolicies",
            [{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 21}],
        ),
        "definition.Steps[TrainModel].RetryPolicies[0].MaxAttempts",
        "from 1 to 20",
        id="retry-attempts",
    ),
    pytest.param(
        _set(
            "TrainModel",
            "RetryPolicies",
            [{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 2, "ExpireAfterMin": 5}],
        ),
        "definition.Steps[TrainModel].RetryPolicies[0].ExpireAfterMin",
        "not both",
        id="retry-attempts-and-expiry",
    ),
    pytest.param(
        _set("TrainModel", "PropertyFiles", [{"PropertyFileName": "a"}]),
        "definition.Steps[TrainModel].PropertyFiles",
        "only Processing steps",
        id="property-file-on-training",
    ),
    pytest.param(
        lambda d: step(d, "EvaluateModel")["PropertyFiles"][0].__setitem__("OutputName", "x"),
        "definition.Steps[EvaluateModel].PropertyFiles[0].OutputName",
        "'x' is not one of the step's",
        id="property-file-on-an-unknown-output",
    ),
    pytest.param(
        lambda d: d["Parameters"][3].__setitem__("DefaultValue", "high"),
        "definition.Parameters[AccuracyThreshold].DefaultValue",
        "'high' is not a Float",
        id="float-default",
    ),
    pytest.param(
        lambda d: d["Parameters"][2].__setitem__("DefaultValue", 2.5),
        "definition.Parameters[TrainingEpochs].DefaultValue",
        "not a Integer",
        id="integer-default",
    ),
    pytest.param(
        lambda d: d["Parameters"][5].__setitem__("DefaultValue", "true"),
        "definition.Parameters[Shuffle].DefaultValue",
        "not a Boolean",
        id="boolean-default",
    ),
    pytest.param(
        lambda d: d["Parameters"][0].__setitem__("DefaultValue", 3),
        "definition.Parameters[ProcessingInstanceType].DefaultValue",
        "not a String",
        id="string-default",
    ),
    pytest.param(
        lambda d: d["Parameters"][0].__setitem__("Type", "Date"),
        "definition.Parameters[ProcessingInstanceType].Type",
        "one of String, Integer, Float, Boolean",
        id="parameter-type",
    ),
    pytest.param(
        lambda d: d["Parameters"].append({"Name": "InputData", "Type": "String"}),
        "definition.Parameters[InputData]",
        "two parameters",
        id="duplicate-parameter",
    ),
]


@pytest.mark.parametrize(("mutate", "field", "message"), REFUSALS)
def test_a_bad_definition_is_refused_naming_where(
    mutate: Mutation, field: str, message: str
) -> None:
    document = canonical()
    mutate(document)
    with pytest.raises(ValidationError) as caught:
        definition_parse(document)
    assert caught.value.field == field, caught.value.message
    assert message in caught.value.message
    assert caught.value.message.startswith(field), caught.value.message


def test_a_cycle_is_refused_naming_the_steps_in_it() -> None:
    document = canonical()
    step(document, "PreprocessData")["DependsOn"] = ["EvaluateModel"]
    with pytest.raises(ValidationError) as caught:
        definition_parse(document)
    message = caught.value.message
    assert "a cycle" in message
    cycle = message.split(": ")[-1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"PreprocessData", "EvaluateModel"} | ({"TrainModel"} & set(cycle))
    assert "CheckAccuracy" not in message


def test_a_step_depending_on_itself_is_a_cycle() -> None:
    document = small()
    document["Steps"][0]["DependsOn"] = ["Prepare"]
    with pytest.raises(ValidationError, match="Prepare -> Prepare"):
        definition_parse(document)


def test_a_definition_above_the_size_limit_is_refused() -> None:
    document = small()
    document["Metadata"] = {"padding": "x" * MAX_DEFINITION_BYTES}
    with pytest.raises(ValidationError, match="above the limit of 1048576 bytes") as caught:
        definition_parse(document)
    assert caught.value.field == "definition"


def test_a_definition_above_the_step_limit_is_refused() -> None:
    document = small()
    document["Steps"] = [
        {"Name": f"S{i}", "Type": "Fail", "Arguments": {}} for i in range(MAX_STEPS + 1)
    ]
    with pytest.raises(ValidationError, match=f"{MAX_STEPS + 1} steps, above the limit"):
        definition_parse(document)
    document["Steps"] = document["Steps"][:MAX_STEPS]
    assert len(definition_parse(document).steps) == MAX_STEPS


@pytest.mark.parametrize(
    ("raw", "message"),
    [("{not json", "not JSON"), ("[1, 2]", "a JSON object"), (42, "a JSON object")],
)
def test_what_is_not_a_json_object_is_refused(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        definition_parse(raw)


# --- pieces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("P30D", timedelta(days=30)),
        ("30d", timedelta(days=30)),
        ("T16m", timedelta(minutes=16)),
        ("30dT5h", timedelta(days=30, hours=5)),
        ("P1W", timedelta(days=7)),
        ("P1Y2M", timedelta(days=425)),
        ("PT90S", timedelta(seconds=90)),
    ],
)
def test_expire_after_takes_iso_durations_and_sagemakers_short_forms(
    text: str, expected: timedelta
) -> None:
    assert duration_parse(text) == expected


@pytest.mark.parametrize("text", ["", "P", "1 hour", "PT", "H1"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        duration_parse(text)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("metrics.accuracy.value", ["metrics", "accuracy", "value"]),
        ("a.b[0]", ["a", "b", 0]),
        ("$.a['c d'][2]", ["a", "c d", 2]),
        ("Return['size']", ["Return", "size"]),
        ('Outputs["train"].S3Output', ["Outputs", "train", "S3Output"]),
    ],
)
def test_json_paths(path: str, segments: list[str | int]) -> None:
    assert json_path_parse(path) == segments


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a[", "a[x]", "a b"])
def test_a_bad_json_path_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        json_path_parse(path)


# --- evaluation --------------------------------------------------------------------------------

EVALUATION = {"metrics": {"accuracy": {"value": 0.91}}, "classes": ["a", "b"]}


def _context() -> Context:
    return Context(
        parameters={"AccuracyThreshold": 0.8, "Name": "abalone", "Shuffle": True},
        steps={
            "TrainModel": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"}},
            "PreprocessData": {
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                        {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test"}},
                    ]
                }
            },
        },
        property_files={("EvaluateModel", "EvaluationReport"): EVALUATION},
        execution={"PipelineExecutionId": "abc123"},
        experiment={"ExperimentName": "abalone"},
        read_json=lambda uri: {"Return": {"size": 12}} if uri == "s3://b/fn/results.json" else {},
    )


ACCURACY = {
    "Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"},
        "Path": "metrics.accuracy.value",
    }
}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("plain", "plain"),
        (3, 3),
        ({"Get": "Parameters.AccuracyThreshold"}, 0.8),
        ({"Get": "Execution.PipelineExecutionId"}, "abc123"),
        ({"Get": "PipelineExperimentConfig.ExperimentName"}, "abalone"),
        ({"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}, "s3://b/model.tar.gz"),
        (
            {"Get": "Steps.PreprocessData.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"},
            "s3://b/test",
        ),
        (
            {"Get": "Steps.PreprocessData.ProcessingOutputConfig.Outputs[0].S3Output.S3Uri"},
            "s3://b/train",
        ),
        (
            {
                "Std:Join": {
                    "On": "/",
                    "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}, 1],
                }
            },
            "s3://b/abc123/1",
        ),
        ({"Std:Join": {"On": ",", "Values": [{"Get": "Parameters.Shuffle"}, 0.5]}}, "true,0.5"),
        (ACCURACY, 0.91),
        ({"Std:JsonGet": {"PropertyFile": "EvaluationReport", "Path": "classes[1]"}}, "b"),
        (
            {
                "Std:JsonGet": {
                    "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3://b/fn", "results.json"]}},
                    "Path": "Return['size']",
                }
            },
            12,
        ),
        ({"a": [{"Get": "Parameters.Name"}]}, {"a": ["abalone"]}),
    ],
)
def test_resolve_evaluates_every_expression_form(expression: object, value: object) -> None:
    assert resolve(expression, _context()) == value


def test_a_json_get_path_not_in_the_file_names_the_path_and_the_file() -> None:
    expression = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"},
            "Path": "metrics.f1.value",
        }
    }
    with pytest.raises(ExpressionError) as caught:
        resolve(expression, _context())
    assert "'metrics.f1.value'" in caught.value.message
    assert "property file 'EvaluationReport' of step 'EvaluateModel'" in caught.value.message


def test_a_json_get_index_out_of_range_is_an_expression_error() -> None:
    expression = {"Std:JsonGet": {"PropertyFile": "EvaluationReport", "Path": "classes[5]"}}
    with pytest.raises(ExpressionError, match=r"'classes\[5\]'"):
        resolve(expression, _context())


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"Get": "Parameters.Missing"}, "no value for parameter 'Missing'"),
        (
            {"Get": "Steps.EvaluateModel.ProcessingJobName"},
            "step 'EvaluateModel' has no properties",
        ),
        ({"Get": "Steps.TrainModel.ModelArtifacts.Nope"}, "has no property 'ModelArtifacts.Nope'"),
        ({"Get": "Execution.StartDateTime"}, "no 'StartDateTime'"),
        (
            {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.X.PropertyFiles.Y"}, "Path": "a"}},
            "property file 'Y' of step 'X' was not read",
        ),
    ],
)
def test_what_an_execution_does_not_have_is_an_expression_error(
    expression: object, message: str
) -> None:
    with pytest.raises(ExpressionError, match=message):
        resolve(expression, _context())


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (
            {"Type": "GreaterThanOrEqualTo", "LeftValue": ACCURACY, "RightValue": GET_THRESHOLD},
            True,
        ),
        ({"Type": "GreaterThan", "LeftValue": ACCURACY, "RightValue": 0.95}, False),
        ({"Type": "LessThan", "LeftValue": ACCURACY, "RightValue": 0.95}, True),
        ({"Type": "LessThanOrEqualTo", "LeftValue": 1, "RightValue": 1}, True),
        (
            {"Type": "Equals", "LeftValue": {"Get": "Parameters.Name"}, "RightValue": "abalone"},
            True,
        ),
        (
            {"Type": "In", "QueryValue": {"Get": "Parameters.Name"}, "Values": ["x", "abalone"]},
            True,
        ),
        ({"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": 1, "RightValue": 1}}, False),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "Equals", "LeftValue": 1, "RightValue": 2},
                    {"Type": "Equals", "LeftValue": 2, "RightValue": 2},
                ],
            },
            True,
        ),
    ],
)
def test_conditions_evaluate(condition: dict[str, Any], holds: bool) -> None:
    assert condition_holds(condition, _context()) is holds


def test_comparing_values_that_do_not_compare_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="cannot compare"):
        condition_holds({"Type": "GreaterThan", "LeftValue": "a", "RightValue": 1}, _context())


# --- parameter values -------------------------------------------------------------------------


def test_parameter_values_take_defaults_and_typed_or_text_values() -> None:
    definition = definition_parse(canonical())
    values = parameter_values(
        definition, {"AccuracyThreshold": "0.9", "TrainingEpochs": 3, "Shuffle": "false"}
    )
    assert values["AccuracyThreshold"] == 0.9
    assert values["TrainingEpochs"] == 3
    assert values["Shuffle"] is False
    assert values["ModelApprovalStatus"] == "PendingManualApproval"


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"Nope": 1}, "parameters.Nope"),
        ({"TrainingEpochs": "three"}, "parameters.TrainingEpochs"),
        ({"TrainingEpochs": 2.5}, "parameters.TrainingEpochs"),
        ({"Shuffle": 1}, "parameters.Shuffle"),
        ({"AccuracyThreshold": True}, "parameters.AccuracyThreshold"),
        ({"InputData": "x" * 1025}, "parameters.InputData"),
    ],
)
def test_a_parameter_value_of_the_wrong_type_is_refused(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parameter_values(definition_parse(canonical()), given)
    assert caught.value.field == field


def test_a_parameter_without_a_default_must_be_given() -> None:
    document = small()
    del document["Parameters"][0]["DefaultValue"]
    with pytest.raises(ValidationError, match="required") as caught:
        parameter_values(definition_parse(document), {})
    assert caught.value.field == "parameters.Threshold"
