"""End-to-end tests of ``serve``: the real pre-fork server as a subprocess on a loopback port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serving_testing import LIST_INPUT, ModelDir, Server

ServerFactory = Callable[..., Server]


@pytest.fixture
def model(tmp_path: Path) -> ModelDir:
    return ModelDir(tmp_path)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[Server] = []

    def factory(**env: str) -> Server:
        server = Server(tmp_path, **env)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.kill()


@pytest.fixture
def tiny(model: ModelDir) -> ModelDir:
    """A pickled model with the default model_fn/predict_fn/output_fn, plus a list input_fn."""
    model.pickle_tiny_model(threshold=1.0)
    model.write_code("inference.py", LIST_INPUT)
    return model


def test_csv_and_json_in_json_and_csv_out(tiny: ModelDir, start: ServerFactory) -> None:
    server = start()
    server.wait_ready()
    status, body, response = server.invoke("0,0.5\n1,1\n", "text/csv")
    assert (status, json.loads(body)) == (200, [0, 1])
    assert response.getheader("Content-Type") == "application/json"
    status, body, response = server.invoke(
        '{"instances": [[3, 4]]}', "application/json", "text/csv"
    )
    assert (status, body, response.getheader("Content-Type")) == (200, b"1\n", "text/csv")
    status, body, _ = server.invoke("[[0, 0]]", "application/json", "image/png, */*")
    assert (status, body) == (200, b"[0]")
    assert server.stop() == 0
    assert '"POST /invocations" 200' in server.log


def test_error_statuses(tiny: ModelDir, start: ServerFactory) -> None:
    server = start(SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    server.wait_ready()
    status, body, _ = server.invoke("1,2", "text/plain")
    assert status == 415
    assert json.loads(body)["error-message"] == "content type 'text/plain' is not supported"
    status, body, _ = server.invoke("1,2", "text/csv", "image/png")
    assert status == 406
    assert "image/png" in json.loads(body)["error-message"]
    status, body, _ = server.invoke(b"1" * (1024 * 1024 + 1), "text/csv")
    assert status == 413
    assert server.request("GET", "/nope")[:2] == (404, b"{}")
    assert server.request("POST", "/ping")[:2] == (404, b"{}")
    status, body, _ = server.request("GET", "/execution-parameters")
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 1,
    }
    # The server is still fine after all that.
    assert server.invoke("5,5", "text/csv")[:2] == (200, b"[1]")


def test_default_input_fn_refuses_unknown_content_type(
    model: ModelDir, start: ServerFactory
) -> None:
    model.pickle_tiny_model()
    server = start()
    server.wait_ready()
    assert server.invoke("x", "text/plain")[0] == 415


def test_keep_alive_serves_many_requests_on_one_connection(
    tiny: ModelDir, start: ServerFactory
) -> None:
    server = start()
    server.wait_ready()
    connection = server.connect()
    connection.request("GET", "/ping")
    connection.getresponse().read()
    sock = connection.sock
    for value in range(10):
        connection.request(
            "POST", "/invocations", body=f"{value},0", headers={"Content-Type": "text/csv"}
        )
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == [int(value > 1)]
    assert connection.sock is sock  # never reconnected
    connection.close()


def test_all_four_hooks_with_context(model: ModelDir, start: ServerFactory) -> None:
    model.write_code(
        "inference.py",
        """
        import json
        import os

        def model_fn(model_dir):
            with open(os.path.join(model_dir, "weights.json")) as stream:
                return json.load(stream)

        def input_fn(body, content_type, context):
            assert content_type == "application/json"
            return json.loads(body)

        def predict_fn(data, model):
            return [model["scale"] * x for x in data]

        def output_fn(prediction, accept, context):
            context.response_custom_attributes = "echo:" + str(context.custom_attributes)
            return json.dumps({"scaled": prediction}), "application/vnd.scaled+json"
        """,
    )
    (model.path / "weights.json").write_text('{"scale": 3}')
    server = start()
    server.wait_ready()
    status, body, response = server.request(
        "POST",
        "/invocations",
        "[1, 2]",
        {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "trace=7"},
    )
    assert (status, json.loads(body)) == (200, {"scaled": [3, 6]})
    assert response.getheader("Content-Type") == "application/vnd.scaled+json"
    assert response.getheader("X-Amzn-SageMaker-Custom-Attributes") == "echo:trace=7"


def test_transform_fn(model: ModelDir, start: ServerFactory) -> None:
    model.write_code(
        "serve_me.py",
        """
        def model_fn(model_dir):
            return "!"

        def transform_fn(model, body, content_type, accept):
            return body.decode()[::-1] + model
        """,
    )
    server = start(
        SAGEMAKER_PROGRAM="serve_me.py", SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/plain"
    )
    server.wait_ready()
    status, body, response = server.invoke("abc", "text/plain")
    assert (status, body, response.getheader("Content-Type")) == (200, b"cba!", "text/plain")


def test_exception_in_predict_fn_is_a_500_with_the_message(
    model: ModelDir, start: ServerFactory
) -> None:
    model.write_code(
        "inference.py",
        """
        def model_fn(model_dir):
            return None
        def input_fn(body, content_type):
            return body
        def predict_fn(data, model):
            if data == b"boom":
                raise ValueError("the model exploded on purpose")
            return [1]
        """,
    )
    server = start()
    server.wait_ready()
    status, body, _ = server.invoke("boom", "application/json")
    error = json.loads(body)
    assert status == 500
    assert error["error"] == "ValueError"
    assert error["error-message"] == "the model exploded on purpose"
    assert "predict_fn" in error["stack-trace"]
    assert server.invoke("fine", "application/json")[:2] == (200, b"[1]")


def test_a_model_that_fails_to_load_fails_ping(model: ModelDir, start: ServerFactory) -> None:
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
    server = start()
    server.wait_ready(expect=500)
    status, body, _ = server.invoke("1", "application/json")
    assert status == 500
    assert "transform_fn together with predict_fn" in json.loads(body)["error-message"]


def ping(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/ping")
    return connection.getresponse().status


PID_MODEL = """
import os
import time

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return body.decode()

def predict_fn(data, model):
    if data.startswith("sleep "):
        time.sleep(float(data.split()[1]))
    return [os.getpid()]
"""


def test_a_prediction_past_the_timeout_gets_504_and_the_worker_is_replaced(
    model: ModelDir, start: ServerFactory
) -> None:
    model.write_code("inference.py", PID_MODEL)
    server = start(SAGEMAKER_MODEL_SERVER_TIMEOUT="1")
    server.wait_ready()
    (first,) = server.workers()
    started = time.monotonic()
    status, body, _ = server.invoke("sleep 60", "text/plain")
    assert status == 504
    assert time.monotonic() - started < 5
    assert "did not answer within 1 s" in json.loads(body)["error-message"]
    deadline = time.monotonic() + 10
    while first in server.workers() or not server.workers():
        assert time.monotonic() < deadline, server.log
        time.sleep(0.05)
    server.wait_ready()
    status, body, _ = server.invoke("now", "text/plain")
    assert status == 200
    assert json.loads(body) != [first]


def test_two_workers_and_a_killed_worker_is_replaced(model: ModelDir, start: ServerFactory) -> None:
    model.write_code("inference.py", PID_MODEL)
    server = start(SAGEMAKER_MODEL_SERVER_WORKERS="2")
    server.wait_ready()
    deadline = time.monotonic() + 10
    while len(server.workers()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = server.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim in server.workers() or len(server.workers()) < 2:
        assert time.monotonic() < deadline, server.log
        time.sleep(0.05)
    after = server.workers()
    assert len(after) == 2
    assert victim not in after
    assert f"worker {victim} exited (signal 9); restarting" in server.log
    seen: set[int] = set()
    for _ in range(50):
        status, body, _ = server.invoke("x", "text/plain")
        assert status == 200
        seen.update(json.loads(body))
    assert seen <= after


def test_sigterm_lets_in_flight_requests_finish_and_exits_0(
    model: ModelDir, start: ServerFactory
) -> None:
    model.write_code("inference.py", PID_MODEL)
    server = start(SAGEMAKER_MODEL_SERVER_WORKERS="2")
    server.wait_ready()
    idle = server.connect()  # an idle keep-alive connection must not hold up the shutdown
    idle.request("GET", "/ping")
    idle.getresponse().read()
    results: list[tuple[int, bytes]] = []

    def slow_request() -> None:
        results.append(server.invoke("sleep 1", "text/plain")[:2])

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    thread.join(5)
    assert results == [(200, results[0][1])]
    assert time.monotonic() - started < 5
    with pytest.raises((http.client.HTTPException, OSError)):
        ping(idle)
    assert "stopping workers" in server.log
