"""The runtime contract, run against both runtimes.

Every test in the first part runs twice: on the Docker engine (skipped without one, failing
under CI=true) and as local processes. Docker tests use the small `studiolo/python-base` image
and `python3 -c`; the process runtime runs the same scripts with the interpreter running the
tests. Scripts find their `/opt/ml` through SAGEMAKER_BASE_DIR when the process runtime
relocates it. Every container is named `studiolo-test-<uuid>`, labelled io.studiolo.test=true
and removed after its test; a session finalizer removes any that escaped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from compute.labels import LABEL_MANAGED
from compute.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    ImageNotFound,
    Mount,
    Runtime,
)
from compute.runtime.docker import DockerRuntime
from compute.runtime.process import ProcessRuntime
from studio.errors import ValidationError

IMAGE = "studiolo/python-base:bookworm"
TEST_LABEL = "io.studiolo.test"
# This run's value of TEST_LABEL: test runs sharing one engine clean up only their own containers.
TEST_RUN = os.path.basename(os.environ["STUDIOLO_HOME"])
GROUP_LABEL = "io.studiolo.test-group"
MEMBER_LABEL = "io.studiolo.test-member"
WAIT = 30  # seconds: any single container in this file is done well before

# Where a script finds its /opt/ml: the process runtime relocates it.
BASE_DIR = 'os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")'


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_test_containers() -> Iterator[None]:
    yield
    from compute.runtime import docker_status

    if not docker_status().ok:
        return
    import docker

    client = docker.from_env()
    try:
        for container in client.containers.list(
            all=True, filters={"label": f"{TEST_LABEL}={TEST_RUN}"}
        ):
            container.remove(force=True)
    finally:
        client.close()


@dataclass
class Harness:
    """One runtime under test, plus what its scripts need and what to clean up."""

    runtime: Runtime
    python: str  # the interpreter inside the "container"
    started: list[str] = field(default_factory=list)

    def spec(self, code: str, *args: str, **overrides: Any) -> ContainerSpec:
        labels = {TEST_LABEL: TEST_RUN, **overrides.pop("labels", {})}
        values: dict[str, Any] = {
            "name": f"studiolo-test-{uuid.uuid4().hex[:12]}",
            "image": IMAGE,
            "command": [self.python, "-c", textwrap.dedent(code), *args],
            "labels": labels,
            **overrides,
        }
        return ContainerSpec(**values)

    def start(self, spec: ContainerSpec) -> ContainerState:
        # Registered before starting: a start that fails half-way is cleaned up as well.
        self.started.append(spec.name)
        state = self.runtime.start(spec)
        self.started.append(state.id)
        return state

    def run(
        self, code: str, *args: str, **overrides: Any
    ) -> tuple[ContainerState, dict[str, bytes]]:
        """Start, wait, and collect the output per stream."""
        state = self.start(self.spec(code, *args, **overrides))
        done = self.runtime.wait(state.id, timeout=WAIT)
        return done, collect(self.runtime.logs(state.id, follow=True))

    def cleanup(self) -> None:
        for container_id in reversed(self.started):
            self.runtime.remove(container_id)


def collect(chunks: Iterator[Any]) -> dict[str, bytes]:
    streams = {"stdout": b"", "stderr": b""}
    for chunk in chunks:
        streams[chunk.stream] += chunk.data
    return streams


def wait_for_output(runtime: Runtime, container_id: str, marker: bytes) -> None:
    seen = b""
    for chunk in runtime.logs(container_id, follow=True):
        seen += chunk.data
        if marker in seen:
            return
    pytest.fail(f"the container exited without printing {marker!r}; it printed {seen!r}")


@pytest.fixture(scope="module")
def docker_runtime() -> DockerRuntime:
    return DockerRuntime()


@pytest.fixture(params=["docker", "process"])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
        harness = Harness(request.getfixturevalue("docker_runtime"), "python3")
    else:
        harness = Harness(ProcessRuntime(tmp_path / "runtime"), sys.executable)
    yield harness
    harness.cleanup()


@pytest.fixture
def docker_rt(docker_engine: None, docker_runtime: DockerRuntime) -> Iterator[Harness]:
    harness = Harness(docker_runtime, "python3")
    yield harness
    harness.cleanup()


@pytest.fixture
def process_rt(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(ProcessRuntime(tmp_path / "runtime"), sys.executable)
    yield harness
    harness.cleanup()


# --- the shared contract ---------------------------------------------------------------------


def test_a_container_runs_its_command_and_reports_the_exit_code(rt: Harness) -> None:
    spec = rt.spec("import sys; print('hello'); sys.exit(3)")
    state = rt.start(spec)
    assert state.name == spec.name
    assert state.labels[LABEL_MANAGED] == "true"
    assert state.labels[TEST_LABEL] == TEST_RUN

    done = rt.runtime.wait(state.id, timeout=WAIT)

    assert not done.running
    assert done.exit_code == 3
    assert not done.oom_killed
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.started_at.tzinfo is not None
    assert done.started_at <= done.finished_at
    assert rt.runtime.inspect(state.id) == done


def test_wait_returns_the_running_state_when_its_timeout_passes(rt: Harness) -> None:
    state = rt.start(rt.spec("import time; time.sleep(30)"))
    began = time.monotonic()

    still = rt.runtime.wait(state.id, timeout=0.5)

    assert 0.4 <= time.monotonic() - began < 5
    assert still.running
    assert still.exit_code is None
    assert still.finished_at is None


def test_the_command_sees_its_arguments_and_the_spec_env_and_nothing_of_the_worker(
    rt: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUDIOLO_WORKER_SECRET", "must-not-leak")
    code = """
        import json, os, sys
        print(json.dumps({"args": sys.argv[1:], "env": dict(os.environ)}))
    """
    done, out = rt.run(code, "alpha", "two words", env={"GREETING": "hello world"})

    assert done.exit_code == 0, out
    seen = json.loads(out["stdout"])
    assert seen["args"] == ["alpha", "two words"]
    assert seen["env"]["GREETING"] == "hello world"
    assert "STUDIOLO_WORKER_SECRET" not in seen["env"]


def test_an_entrypoint_runs_with_the_command_as_its_arguments(rt: Harness) -> None:
    spec = rt.spec("", env={"GREETING": "hi"})
    spec = ContainerSpec(
        **{
            **spec.__dict__,
            "entrypoint": ["/bin/sh", "-c"],
            "command": ['echo "from the shell: $GREETING"'],
        }
    )
    state = rt.start(spec)
    done = rt.runtime.wait(state.id, timeout=WAIT)
    out = collect(rt.runtime.logs(state.id))

    assert done.exit_code == 0, out
    assert out["stdout"] == b"from the shell: hi\n"


def test_logs_keep_stdout_and_stderr_apart_and_in_order(rt: Harness) -> None:
    code = """
        import sys
        for i in range(50):
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
    """
    done, followed = rt.run(code)

    assert done.exit_code == 0
    assert followed["stdout"] == b"".join(f"out {i}\n".encode() for i in range(50))
    assert followed["stderr"] == b"".join(f"err {i}\n".encode() for i in range(50))
    assert collect(rt.runtime.logs(done.id, follow=False)) == followed


def test_a_late_follower_sees_early_output_and_then_the_rest(rt: Harness) -> None:
    code = """
        import time
        print("early", flush=True)
        time.sleep(1.2)
        print("late", flush=True)
    """
    state = rt.start(rt.spec(code))
    time.sleep(0.6)  # attach after "early" was printed

    out = collect(rt.runtime.logs(state.id, follow=True))

    assert out["stdout"] == b"early\nlate\n"
    assert not rt.runtime.inspect(state.id).running  # the iterator ended with the container


def test_follow_delivers_a_line_long_before_the_container_exits(rt: Harness) -> None:
    code = """
        import time
        print(repr(time.time()), flush=True)
        time.sleep(3)
        print("second", flush=True)
    """
    state = rt.start(rt.spec(code))
    arrivals: list[tuple[float, bytes]] = []
    for chunk in rt.runtime.logs(state.id, follow=True):
        arrivals.append((time.time(), chunk.data))
    ended = time.time()

    first_at, first = arrivals[0]
    assert ended - first_at >= 2.0, arrivals
    latency = first_at - float(first)
    assert latency < 0.25, f"the first line took {latency * 1000:.0f} ms to arrive"
    assert b"".join(data for _, data in arrivals).endswith(b"second\n")


def test_a_last_line_without_a_newline_is_not_lost(rt: Harness) -> None:
    code = """
        import sys, time
        print("first", flush=True)
        time.sleep(0.5)
        sys.stdout.write("no newline at the end")
    """
    state = rt.start(rt.spec(code))

    out = collect(rt.runtime.logs(state.id, follow=True))

    assert out["stdout"] == b"first\nno newline at the end"


def test_stop_delivers_sigterm_so_the_script_can_save_its_work(rt: Harness, tmp_path: Path) -> None:
    opt_ml = tmp_path / "opt_ml"
    opt_ml.mkdir()
    code = f"""
        import os, signal, sys, time
        def on_term(signum, frame):
            with open(os.path.join({BASE_DIR}, "terminated"), "w") as f:
                f.write(str(signum))
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(60)
    """
    state = rt.start(rt.spec(code, mounts=(Mount(opt_ml, "/opt/ml"),)))
    wait_for_output(rt.runtime, state.id, b"ready")
    began = time.monotonic()

    rt.runtime.stop(state.id, grace_seconds=10)

    assert time.monotonic() - began < 5
    done = rt.runtime.inspect(state.id)
    assert not done.running
    assert done.exit_code == 0
    assert (opt_ml / "terminated").read_text() == "15"


def test_stop_kills_after_the_grace_period_when_sigterm_is_ignored(rt: Harness) -> None:
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """
    state = rt.start(rt.spec(code))
    wait_for_output(rt.runtime, state.id, b"ready")
    began = time.monotonic()

    rt.runtime.stop(state.id, grace_seconds=1)

    assert 0.9 <= time.monotonic() - began < 6
    done = rt.runtime.inspect(state.id)
    assert not done.running
    assert done.exit_code == 137


def test_stopping_an_exited_container_changes_nothing(rt: Harness) -> None:
    done, _ = rt.run("import sys; sys.exit(4)")

    rt.runtime.stop(done.id, grace_seconds=1)

    assert rt.runtime.inspect(done.id).exit_code == 4


def test_remove_kills_a_running_container_and_can_be_repeated(rt: Harness) -> None:
    group = uuid.uuid4().hex
    state = rt.start(rt.spec("import time; time.sleep(60)", labels={GROUP_LABEL: group}))

    rt.runtime.remove(state.id)
    rt.runtime.remove(state.id)

    with pytest.raises(ContainerNotFound):
        rt.runtime.inspect(state.id)
    assert rt.runtime.find({GROUP_LABEL: group}) == []


def test_find_returns_the_containers_carrying_all_the_labels(rt: Harness) -> None:
    group = uuid.uuid4().hex
    a = rt.start(rt.spec("pass", labels={GROUP_LABEL: group, MEMBER_LABEL: "a"}))
    b = rt.start(
        rt.spec("import time; time.sleep(30)", labels={GROUP_LABEL: group, MEMBER_LABEL: "b"})
    )
    rt.runtime.wait(a.id, timeout=WAIT)

    both = rt.runtime.find({GROUP_LABEL: group, TEST_LABEL: TEST_RUN})
    only_a = rt.runtime.find({GROUP_LABEL: group, MEMBER_LABEL: "a"})

    assert sorted(state.name for state in both) == sorted([a.name, b.name])
    assert {state.name: state.running for state in both} == {a.name: False, b.name: True}
    assert [state.id for state in only_a] == [a.id]
    assert rt.runtime.find({GROUP_LABEL: uuid.uuid4().hex}) == []


def test_a_second_container_with_the_same_name_is_refused(rt: Harness) -> None:
    spec = rt.spec("import time; time.sleep(30)")
    first = rt.start(spec)

    with pytest.raises(ContainerAlreadyExists) as raised:
        rt.runtime.start(spec)

    assert raised.value.status == 409
    assert rt.runtime.inspect(first.id).running  # the first one is left alone


def test_a_command_that_does_not_exist_fails_with_127(rt: Harness) -> None:
    spec = rt.spec("")
    spec = ContainerSpec(**{**spec.__dict__, "command": ["no-such-command-here"]})
    state = rt.start(spec)

    done = rt.runtime.wait(state.id, timeout=WAIT)

    assert not done.running
    assert done.exit_code == 127
    assert b"no-such-command-here" in collect(rt.runtime.logs(state.id))["stderr"]


def test_a_published_port_answers_on_loopback(rt: Harness) -> None:
    code = """
        import http.server, os
        class Ping(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"pong")
        # In a container 8080 on all its interfaces; as a process the port it was given.
        port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
        host = "127.0.0.1" if "SAGEMAKER_BIND_TO_PORT" in os.environ else "0.0.0.0"
        http.server.HTTPServer((host, port), Ping).serve_forever()
    """
    state = rt.start(rt.spec(code, network=True, ports={8080: None}))
    port = state.ports[8080]

    body = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                body = response.read()
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    assert body == b"pong"


# --- Docker only -----------------------------------------------------------------------------


def test_docker_a_missing_image_is_image_not_found(docker_rt: Harness) -> None:
    spec = docker_rt.spec("pass", image=f"studiolo/no-such-image:{uuid.uuid4().hex[:8]}")

    with pytest.raises(ImageNotFound):
        docker_rt.start(spec)
    assert docker_rt.runtime.image_exists(spec.image) is False
    assert docker_rt.runtime.image_digest(IMAGE).startswith("sha256:")


def test_docker_the_memory_limit_is_real(docker_rt: Harness) -> None:
    code = """
        data = b"x" * (200 * 1024 * 1024)
        print("survived", len(data))
    """
    done, out = docker_rt.run(code, memory_bytes=64 * 1024 * 1024)

    assert done.exit_code == 137, out
    assert done.oom_killed


def test_docker_containers_have_no_network_by_default(docker_rt: Harness) -> None:
    code = """
        with open("/proc/net/dev") as f:
            print(sorted(line.split(":")[0].strip() for line in f if ":" in line))
    """
    done, out = docker_rt.run(code)

    assert done.exit_code == 0, out
    assert out["stdout"] == b"['lo']\n"


def test_docker_root_can_work_in_a_mount_owned_by_another_user(
    docker_rt: Harness, tmp_path: Path
) -> None:
    # The worker creates /opt/ml as its own (non-root) user; the image runs as root with
    # all capabilities but a few dropped.
    opt_ml = tmp_path / "opt_ml"
    (opt_ml / "code").mkdir(parents=True)
    (opt_ml / "code" / "run.sh").write_text("echo hi\n")
    for path in (opt_ml, opt_ml / "code", opt_ml / "code" / "run.sh"):
        os.chown(path, 1000, 1000)
    opt_ml.chmod(0o755)
    (opt_ml / "code").chmod(0o755)
    code = """
        import os
        os.makedirs("/opt/ml/model")
        with open("/opt/ml/model/model.txt", "w") as f:
            f.write("weights")
        os.chmod("/opt/ml/code/run.sh", 0o511)
        print(os.getuid())
    """
    done, out = docker_rt.run(code, mounts=(Mount(opt_ml, "/opt/ml"),))

    assert done.exit_code == 0, out
    assert out["stdout"] == b"0\n"
    assert (opt_ml / "model" / "model.txt").read_text() == "weights"


def test_docker_runs_as_the_spec_user(docker_rt: Harness) -> None:
    done, out = docker_rt.run("import os; print(os.getuid(), os.getgid())", user="1000:1000")

    assert done.exit_code == 0, out
    assert out["stdout"] == b"1000 1000\n"


def test_docker_containers_get_the_limits_and_hardening(docker_rt: Harness) -> None:
    import docker

    state = docker_rt.start(
        docker_rt.spec("import time; time.sleep(30)", cpus=0.5, memory_bytes=128 * 1024 * 1024)
    )
    client = docker.from_env()
    try:
        host = client.api.inspect_container(state.id)["HostConfig"]
    finally:
        client.close()

    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == host["MemorySwap"] == 128 * 1024 * 1024
    assert host["NetworkMode"] == "none"
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["CapDrop"] == ["ALL"]
    assert host["Init"] is True
    assert host["PidsLimit"] == 4096
    assert host["ReadonlyRootfs"] is True
    # /tmp: half the memory limit by default (CONTAINER_TMP_PERCENT).
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,mode=1777,size=65536k"}


def test_docker_a_fork_bomb_stops_at_the_pid_limit(docker_rt: Harness, settings: Any) -> None:
    settings.CONTAINER_PIDS_LIMIT = 64
    code = """
        import os, time
        children = 0
        try:
            while children < 1000:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print("refused after", children, exc.strerror, flush=True)
    """
    done, out = docker_rt.run(code)

    assert done.exit_code == 0, out
    line = out["stdout"].decode()
    assert line.startswith("refused after "), out
    # tini and the script count too: the script got fewer than 64 children.
    assert int(line.split()[2]) < 64


def test_docker_the_root_file_system_is_read_only_but_the_contract_paths_are_not(
    docker_rt: Harness, tmp_path: Path
) -> None:
    code = f"""
        import os
        base = {BASE_DIR}
        for path in ("/usr/studiolo-probe", "/etc/studiolo-probe", "/root-probe",
                     os.path.join(base, "model", "model.txt"),
                     os.path.join(base, "output", "data", "out.txt"),
                     "/tmp/scratch.txt"):
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write("x")
                print(path, "written")
            except OSError as exc:
                print(path, "refused", exc.strerror)
    """
    (tmp_path / "ml" / "model").mkdir(parents=True)
    done, out = docker_rt.run(
        code, mounts=(Mount(tmp_path / "ml", "/opt/ml"),), memory_bytes=256 * 1024 * 1024
    )

    assert done.exit_code == 0, out
    assert out["stdout"].decode().splitlines() == [
        "/usr/studiolo-probe refused Read-only file system",
        "/etc/studiolo-probe refused Read-only file system",
        "/root-probe refused Read-only file system",
        "/opt/ml/model/model.txt written",
        "/opt/ml/output/data/out.txt written",
        "/tmp/scratch.txt written",
    ]
    assert (tmp_path / "ml" / "model" / "model.txt").read_text() == "x"


def test_docker_ports_are_published_on_loopback_only(docker_rt: Harness) -> None:
    import docker

    state = docker_rt.start(
        docker_rt.spec("import time; time.sleep(30)", network=True, ports={8080: None})
    )
    client = docker.from_env()
    try:
        published = client.api.inspect_container(state.id)["NetworkSettings"]["Ports"]
    finally:
        client.close()

    assert [binding["HostIp"] for binding in published["8080/tcp"]] == ["127.0.0.1"]
    assert state.ports[8080] == int(published["8080/tcp"][0]["HostPort"])


def test_docker_ports_without_a_network_are_refused(docker_rt: Harness) -> None:
    with pytest.raises(ValidationError):
        docker_rt.start(docker_rt.spec("pass", ports={8080: None}))


def _wheel(folder: Path, name: str, module_source: str) -> Path:
    """A minimal pure-Python wheel (pip installs it offline, with no build step)."""
    import base64
    import hashlib
    import zipfile

    dist_info = f"{name}-0.1.dist-info"
    files = {
        f"{name}.py": module_source,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def test_docker_script_mode_requirements_install_under_the_read_only_root(
    docker_rt: Harness, tmp_path: Path
) -> None:
    opt_ml = tmp_path / "ml"
    (opt_ml / "input" / "config").mkdir(parents=True)
    code = opt_ml / "code"
    code.mkdir()
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"sagemaker_program": '"train.py"'})
    )
    (opt_ml / "input" / "config" / "inputdataconfig.json").write_text("{}")
    wheel = _wheel(code, "studiolo_probe_dep", "ANSWER = 42\n")
    (code / "requirements.txt").write_text(f"./{wheel.name}\n")
    (code / "train.py").write_text(
        "import studiolo_probe_dep, sys\n"
        "print('imported', studiolo_probe_dep.ANSWER, 'from', studiolo_probe_dep.__file__)\n"
    )
    spec = docker_rt.spec(
        "",
        image="studiolo/sklearn:latest",
        mounts=(Mount(opt_ml, "/opt/ml"),),
        memory_bytes=512 * 1024 * 1024,
        env={"PIP_NO_INDEX": "1"},
    )
    spec = ContainerSpec(**{**spec.__dict__, "command": ["train"]})

    state = docker_rt.start(spec)
    done = docker_rt.runtime.wait(state.id, timeout=120)
    out = collect(docker_rt.runtime.logs(state.id))

    assert done.exit_code == 0, out
    stdout = out["stdout"].decode()
    assert "imported 42 from /tmp/studiolo-python/" in stdout, out


# --- process only ----------------------------------------------------------------------------


def test_process_the_opt_ml_mount_becomes_the_base_dir(process_rt: Harness, tmp_path: Path) -> None:
    code = """
        import os
        print(os.environ["SAGEMAKER_BASE_DIR"])
        print(os.getcwd())
    """
    done, out = process_rt.run(
        code, mounts=(Mount(tmp_path / "ml", "/opt/ml"),), workdir="/opt/ml/code"
    )

    assert done.exit_code == 0, out
    base = (tmp_path / "ml").resolve()
    assert out["stdout"].decode().splitlines() == [str(base), str(base / "code")]


def test_process_other_mounts_users_and_ports_are_refused(
    process_rt: Harness, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="/data"):
        process_rt.start(process_rt.spec("pass", mounts=(Mount(tmp_path, "/data"),)))
    with pytest.raises(ValidationError, match="user"):
        process_rt.start(process_rt.spec("pass", user="nobody-else"))
    with pytest.raises(ValidationError, match="9000"):
        process_rt.start(process_rt.spec("pass", ports={9000: None}))
    assert process_rt.runtime.find({TEST_LABEL: TEST_RUN}) == []


def test_process_train_runs_the_toolkit_on_the_job_folder(
    process_rt: Harness, tmp_path: Path
) -> None:
    opt_ml = tmp_path / "ml"
    (opt_ml / "input" / "config").mkdir(parents=True)
    (opt_ml / "code").mkdir()
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"sagemaker_program": '"train.py"', "epochs": "3"})
    )
    (opt_ml / "input" / "config" / "inputdataconfig.json").write_text("{}")
    (opt_ml / "code" / "train.py").write_text(
        "import os, sys\n"
        "print('training with', sys.argv[1:])\n"
        "with open(os.path.join(os.environ['SM_MODEL_DIR'], 'model.txt'), 'w') as f:\n"
        "    f.write('weights')\n"
    )
    spec = process_rt.spec("", mounts=(Mount(opt_ml, "/opt/ml"),))
    spec = ContainerSpec(**{**spec.__dict__, "command": ["train"]})

    state = process_rt.start(spec)
    done = process_rt.runtime.wait(state.id, timeout=WAIT)
    out = collect(process_rt.runtime.logs(state.id))

    assert done.exit_code == 0, out
    assert b"training with ['--epochs', '3']" in out["stdout"]
    assert (opt_ml / "model" / "model.txt").read_text() == "weights"
    assert (opt_ml / "output" / "success").exists()


def test_process_a_container_outlives_the_worker_that_started_it(
    process_rt: Harness, tmp_path: Path
) -> None:
    root = tmp_path / "runtime"
    group = uuid.uuid4().hex
    spec = process_rt.spec(
        "import time; print('one', flush=True); time.sleep(1.5); print('two')",
        labels={GROUP_LABEL: group},
    )
    process_rt.started.append(spec.name)
    starter = f"""
import sys
from pathlib import Path
from compute.runtime.base import ContainerSpec
from compute.runtime.process import ProcessRuntime
ProcessRuntime(Path({str(root)!r})).start(ContainerSpec(
    name={spec.name!r}, image="none", command={spec.command!r}, labels={dict(spec.labels)!r}))
"""
    # Another worker: it starts the container and exits at once.
    subprocess.run([sys.executable, "-c", starter], check=True, cwd=Path(__file__).parents[3])

    found = ProcessRuntime(root).find({GROUP_LABEL: group})
    assert [state.name for state in found] == [spec.name]
    assert found[0].running
    out = collect(ProcessRuntime(root).logs(spec.name, follow=True))
    assert out["stdout"] == b"one\ntwo\n"
    assert ProcessRuntime(root).wait(spec.name, timeout=WAIT).exit_code == 0


# A container whose script starts a process in a session of its own (out of its process
# group, as a daemon does) and prints its pid, then waits.
_ESCAPING = """
    import subprocess, sys, time
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    print(daemon.pid, flush=True)
    time.sleep(120)
"""


def _escaped_pid(runtime: Runtime, container_id: str) -> int:
    seen = b""
    for chunk in runtime.logs(container_id, follow=True):
        seen += chunk.data
        if seen.endswith(b"\n"):
            return int(seen)
    pytest.fail(f"the container exited before printing its daemon's pid: {seen!r}")


def _gone(pid: int, timeout: float = 15) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_process_remove_ends_what_left_the_process_group(process_rt: Harness) -> None:
    state = process_rt.start(process_rt.spec(_ESCAPING))
    daemon = _escaped_pid(process_rt.runtime, state.id)

    process_rt.runtime.remove(state.id)

    assert _gone(daemon)


def test_process_stopping_ends_what_left_the_process_group(process_rt: Harness) -> None:
    state = process_rt.start(process_rt.spec(_ESCAPING))
    daemon = _escaped_pid(process_rt.runtime, state.id)

    process_rt.runtime.stop(state.id, grace_seconds=1)

    assert _gone(daemon)
    assert not process_rt.runtime.inspect(state.id).running


def test_process_a_container_whose_folder_is_deleted_ends(process_rt: Harness) -> None:
    # Nobody removed the container, but its state folder went (a test run's temporary home
    # deleted at its end): the supervisor ends the command and everything it started.
    import shutil

    import psutil

    state = process_rt.start(process_rt.spec(_ESCAPING))
    daemon = _escaped_pid(process_rt.runtime, state.id)
    record = json.loads((process_rt.runtime.root / state.id / "process.json").read_text())

    shutil.rmtree(process_rt.runtime.root / state.id)

    for pid in (daemon, record["pid"], record["supervisor_pid"]):
        assert _gone(pid), psutil.Process(pid).cmdline()


def test_process_the_memory_limit_makes_allocations_fail(process_rt: Harness) -> None:
    code = """
        data = b"x" * (1024 * 1024 * 1024)
        print("survived", len(data))
    """
    done, out = process_rt.run(code, memory_bytes=256 * 1024 * 1024)

    assert done.exit_code == 1, out
    assert not done.oom_killed  # an allocation refused is not an OOM kill
    assert b"MemoryError" in out["stderr"]


def test_process_runtime_is_labelled_unisolated_and_has_no_images(process_rt: Harness) -> None:
    runtime = process_rt.runtime
    assert runtime.name == "process"
    assert runtime.isolated is False
    assert "unisolated" in runtime.ping()
    assert runtime.image_exists("anything:at-all")
    assert runtime.image_digest("studiolo/sklearn:latest") == "process:studiolo/sklearn:latest"


# --- selection -------------------------------------------------------------------------------


def test_get_runtime_follows_the_configuration_once_per_process(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import compute.runtime
    from compute.runtime import RuntimeStatus, get_runtime

    monkeypatch.setattr(compute.runtime, "_cached", None)  # restored afterwards
    settings.STUDIOLO_HOME = tmp_path
    engine = RuntimeStatus("docker", False, "engine not reachable: test")
    monkeypatch.setattr(compute.runtime, "docker_status", lambda timeout=3.0: engine)

    settings.RUNTIME = "process"
    chosen = get_runtime()
    assert isinstance(chosen, ProcessRuntime)
    assert chosen.root == tmp_path / "runtime" / "process"
    assert get_runtime() is chosen

    settings.RUNTIME = "auto"
    assert isinstance(get_runtime(), ProcessRuntime)  # no engine: the process runtime

    monkeypatch.setattr(compute.runtime, "_cached", None)
    engine = RuntimeStatus("docker", True, "Docker engine 20.10")
    assert isinstance(get_runtime(), DockerRuntime)

    settings.RUNTIME = "docker"
    engine = RuntimeStatus("docker", False, "engine not reachable: test")
    assert isinstance(get_runtime(), DockerRuntime)  # never falls back when asked for docker
