"""Unit tests of the handler chain: content negotiation, defaults, hook loading and arity.

numpy is not in the test venv: the numpy paths of the defaults (CSV/JSON/NPY decoding, NPY
encoding) are exercised inside the sklearn image by tests/containers/test_serving_image.py.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from serving_testing import ModelDir

from studiolo_toolkit.handlers import (
    Context,
    ModelLoadError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
    _make_hook,
    accept_list,
    default_input_fn,
    default_model_fn,
    default_output_fn,
    load_transformer,
    media_type,
)
from studiolo_toolkit.serving import ServingConfig


class Doubler:
    def predict(self, rows: list[float]) -> list[float]:
        return [row * 2 for row in rows]


def test_media_type_strips_parameters_and_case() -> None:
    assert media_type("Text/CSV; charset=utf-8") == "text/csv"
    assert media_type(None) == ""


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ["application/json"]),
        ("", ["application/json"]),
        ("*/*", ["application/json"]),
        ("image/png, text/csv;q=0.9", ["image/png", "text/csv"]),
    ],
)
def test_accept_list(accept: str | None, expected: list[str]) -> None:
    assert accept_list(accept) == expected


def test_accept_list_uses_the_configured_default() -> None:
    assert accept_list("*/*", "text/csv") == ["text/csv"]


def test_default_input_fn_refuses_other_content_types_with_415() -> None:
    with pytest.raises(UnsupportedContentTypeError) as caught:
        default_input_fn(b"hello", "text/plain")
    assert caught.value.status_code == 415


def test_default_output_fn_json_and_csv() -> None:
    assert default_output_fn([1, 0, 1], "application/json") == (b"[1, 0, 1]", "application/json")
    assert default_output_fn([1, 0, 1], "text/csv") == (b"1\n0\n1\n", "text/csv")
    assert default_output_fn([[1, 2], [3, 4]], "text/csv") == (b"1,2\n3,4\n", "text/csv")


def test_default_output_fn_takes_the_first_supported_accept() -> None:
    body, content_type = default_output_fn([1], "image/png, text/csv, application/json")
    assert (body, content_type) == (b"1\n", "text/csv")
    assert default_output_fn([1], "*/*")[1] == "application/json"
    assert default_output_fn([1], None)[1] == "application/json"


def test_default_output_fn_refuses_unsupported_accept_with_406() -> None:
    with pytest.raises(UnsupportedAcceptError) as caught:
        default_output_fn([1], "image/png")
    assert caught.value.status_code == 406


def test_default_model_fn_loads_the_single_pickle(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    assert default_model_fn(str(tmp_path)) == {"weights": [1, 2]}


def test_default_model_fn_refuses_several_or_no_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model.joblib"):
        default_model_fn(str(tmp_path))
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(2))
    with pytest.raises(ModelLoadError, match="several model files"):
        default_model_fn(str(tmp_path))


def test_hook_arity_with_and_without_context() -> None:
    def plain(data, model):  # type: ignore[no-untyped-def]
        return ("plain", data, model)

    def with_context(data, model, context):  # type: ignore[no-untyped-def]
        return ("context", data, model, context.custom_attributes)

    context = Context("/m", custom_attributes="attr")
    assert _make_hook("predict_fn", plain)(context, 1, 2) == ("plain", 1, 2)
    assert _make_hook("predict_fn", with_context)(context, 1, 2) == ("context", 1, 2, "attr")
    assert _make_hook("predict_fn", lambda *args: args)(context, 1, 2) == (1, 2)


def test_hook_with_a_wrong_arity_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="expected 2 or 3"):
        _make_hook("predict_fn", lambda a, b, c, d: None)
    with pytest.raises(ModelLoadError, match="expected 2 or 3"):
        _make_hook("predict_fn", lambda a: None)


def test_transform_fn_with_predict_fn_is_refused_at_load(tmp_path: Path) -> None:
    model = ModelDir(tmp_path)
    model.write_code(
        "inference.py",
        """
        def model_fn(model_dir):
            return 1
        def predict_fn(data, model):
            return data
        def transform_fn(model, body, content_type, accept):
            return body
        """,
    )
    with pytest.raises(ModelLoadError, match="transform_fn together with predict_fn"):
        load_transformer(str(model.path))


def test_hooks_get_the_context_and_can_set_response_attributes(tmp_path: Path) -> None:
    model = ModelDir(tmp_path)
    model.write_code(
        "handler.py",
        """
        import json
        def model_fn(model_dir, context):
            return {"dir": model_dir, "load_attrs": context.custom_attributes}
        def input_fn(body, content_type):
            return json.loads(body)
        def predict_fn(data, model, context):
            context.response_custom_attributes = "seen=" + context.custom_attributes
            return {"data": data, "model": model}
        def output_fn(prediction, accept):
            return json.dumps(prediction)
        """,
    )
    transformer = load_transformer(str(model.path), program="handler.py")
    body, content_type, context = transformer.transform(
        b"[1]", "application/json", None, {"x-amzn-sagemaker-custom-attributes": "a=1"}
    )
    assert json.loads(body) == {"data": [1], "model": {"dir": str(model.path), "load_attrs": None}}
    # output_fn returned a plain str: the (defaulted) Accept becomes the content type.
    assert content_type == "application/json"
    assert context.response_custom_attributes == "seen=a=1"


def test_defaults_fill_in_missing_hooks(tmp_path: Path) -> None:
    model = ModelDir(tmp_path)
    (model.path / "model.pkl").write_bytes(pickle.dumps(Doubler()))
    model.write_code(
        "inference.py",
        """
        import json
        def input_fn(body, content_type):
            return json.loads(body)
        """,
    )
    transformer = load_transformer(str(model.path), default_accept="text/csv")
    assert transformer.transform(b"[1, 2]", "application/json", "*/*")[:2] == (
        b"2\n4\n",
        "text/csv",
    )


def test_transform_fn_tuple_result(tmp_path: Path) -> None:
    model = ModelDir(tmp_path)
    model.write_code(
        "inference.py",
        """
        def model_fn(model_dir):
            return "m"
        def transform_fn(model, body, content_type, accept):
            return body.upper(), "text/x-upper"
        """,
    )
    transformer = load_transformer(str(model.path))
    assert transformer.transform(b"abc", "text/plain", "text/x-upper")[:2] == (
        b"ABC",
        "text/x-upper",
    )


def test_output_of_a_wrong_type_is_an_error(tmp_path: Path) -> None:
    model = ModelDir(tmp_path)
    model.write_code(
        "inference.py",
        """
        def model_fn(model_dir):
            return "m"
        def transform_fn(model, body, content_type, accept):
            return 42
        """,
    )
    transformer = load_transformer(str(model.path))
    with pytest.raises(TypeError, match="returned int"):
        transformer.transform(b"", "text/plain", None)


def test_serving_config_defaults_and_environment() -> None:
    config = ServingConfig.from_environ({})
    assert config.model_dir == "/opt/ml/model"
    assert (config.port, config.timeout, config.max_payload_mb) == (8080, 60, 6)
    assert config.workers >= 1
    assert config.default_accept == "application/json"
    config = ServingConfig.from_environ(
        {
            "SAGEMAKER_BASE_DIR": "/srv/job",
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "5",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
            "SAGEMAKER_PROGRAM": "handler.py",
        }
    )
    assert config.model_dir == "/srv/job/model"
    assert (config.port, config.workers, config.timeout) == (9000, 3, 5)
    assert (config.max_payload_bytes, config.default_accept, config.program) == (
        2 * 1024 * 1024,
        "text/csv",
        "handler.py",
    )
    with pytest.raises(SystemExit, match="SAGEMAKER_BIND_TO_PORT"):
        ServingConfig.from_environ({"SAGEMAKER_BIND_TO_PORT": "eighty"})
