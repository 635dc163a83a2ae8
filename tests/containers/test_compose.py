"""docker-compose.yml: it validates, exposes nothing beyond loopback, and passes exactly the
settings that docs/deployment.md documents.

Needs a Compose (Debian's docker-compose 1.29, or the `docker compose` plugin) but no engine:
`config` only reads the file. Missing Compose fails the test under CI=true and skips it elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import component_missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

STUDIO_SERVICES = ("migrate", "web", "worker", "control", "beat")
INFRASTRUCTURE_WITH_HEALTHCHECKS = ("postgres", "redis", "minio")
DOCKER_SOCKET = "/var/run/docker.sock"
TEST_SECRET_KEY = "test-secret-key"


@cache
def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], check=False, capture_output=True, text=True
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def run_compose_config(
    *args: str, secret_key: str | None = TEST_SECRET_KEY
) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        component_missing(
            "no Compose: install docker-compose (`scripts/ensure-docker --compose` does it on Debian)"
        )
    env = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key
    return subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "config", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = run_compose_config()
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def documented_names(section: str) -> set[str]:
    """The `NAME`s in the first column of the table between the doc's section markers."""
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(
        rf"<!-- {section}:start -->(.*?)<!-- {section}:end -->", text, flags=re.DOTALL
    )
    assert match, f"docs/deployment.md has no <!-- {section}:start/end --> markers"
    names = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", match.group(1), flags=re.MULTILINE))
    assert names, f"no `NAME` rows in the {section} table of docs/deployment.md"
    return names


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # ["NAME=value", ...]
        return dict(item.split("=", 1) for item in environment)
    return {name: str(value) for name, value in environment.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host ip, published port) of each published port, in either syntax compose prints."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # compose v2: {host_ip, published, target, protocol}
            ports.append((port.get("host_ip", ""), str(port.get("published", ""))))
        else:  # compose 1.x: "127.0.0.1:8000:8000/tcp"
            parts = str(port).split("/")[0].split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            ports.append((host_ip, parts[-2] if len(parts) >= 2 else ""))
    return ports


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount, in either syntax compose prints."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2 and parts[0].startswith("/"):
                mounts.append((parts[0], parts[1]))
    return mounts


def test_compose_file_validates() -> None:
    result = run_compose_config("--quiet")
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"


def test_compose_refuses_to_run_without_a_secret_key() -> None:
    result = run_compose_config("--quiet", secret_key=None)
    assert result.returncode != 0, "compose accepted a deployment without SECRET_KEY"
    assert "set SECRET_KEY" in result.stderr + result.stdout, result.stderr


def test_every_published_port_binds_loopback_only(config: dict[str, Any]) -> None:
    published = {name: published_ports(service) for name, service in config["services"].items()}
    assert ("127.0.0.1", "8000") in published["web"], published["web"]
    exposed = {
        f"{name} -> {host_ip or 'every interface'}:{port}"
        for name, ports in published.items()
        for host_ip, port in ports
        if host_ip != "127.0.0.1"
    }
    assert not exposed, f"ports published beyond loopback: {sorted(exposed)}"


def test_web_workers_and_beat_share_the_same_settings(config: dict[str, Any]) -> None:
    services = config["services"]
    keys = {name: set(environment_of(services[name])) for name in STUDIO_SERVICES}
    assert all(keys[name] == keys["web"] for name in STUDIO_SERVICES), keys


def test_control_plane_and_jobs_have_workers_of_their_own(config: dict[str, Any]) -> None:
    # A running job holds its worker for its whole run: health checks, healing and
    # reconciliation must never queue behind it (studiolo worker --role).
    services = config["services"]
    assert services["worker"]["command"] == ["studiolo", "worker", "--role", "jobs"]
    assert services["control"]["command"] == ["studiolo", "worker", "--role", "control"]


def test_studio_settings_are_exactly_the_documented_ones(config: dict[str, Any]) -> None:
    used = set(environment_of(config["services"]["web"]))
    documented = documented_names("studio-settings")
    assert used == documented, (
        f"set in compose but not documented: {sorted(used - documented)}; "
        f"documented but not set: {sorted(documented - used)}"
    )


def test_host_variables_are_exactly_the_documented_ones() -> None:
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    documented = documented_names("compose-variables")
    assert used == documented, (
        f"read by compose but not documented: {sorted(used - documented)}; "
        f"documented but not read: {sorted(documented - used)}"
    )


def test_settings_point_at_the_compose_services(config: dict[str, Any]) -> None:
    env = environment_of(config["services"]["worker"])
    assert env["DATABASE_URL"] == "postgres://studiolo:studiolo@postgres:5432/studiolo"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["ARTIFACT_STORE"] == "s3://studiolo/artifacts"
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["RUNTIME"] == "docker"
    assert env["STUDIOLO_HOME"] == "/var/lib/studiolo"
    assert env["SECRET_KEY"] == TEST_SECRET_KEY


def test_workers_drive_the_host_engine_through_its_socket(config: dict[str, Any]) -> None:
    for service in ("worker", "control"):
        mounts = bind_mounts(config["services"][service])
        assert (DOCKER_SOCKET, DOCKER_SOCKET) in mounts, (service, mounts)


def test_job_folders_have_the_same_path_on_the_host_and_in_the_worker(
    config: dict[str, Any],
) -> None:
    # The engine resolves a job container's mounts (and a serving container's staged model)
    # on the host: the workers' paths must be the host's own.
    for service in ("worker", "control"):
        worker = config["services"][service]
        work_dir = environment_of(worker)["JOBS_WORK_DIR"]
        assert (work_dir, work_dir) in bind_mounts(worker), (service, bind_mounts(worker))


def test_web_and_worker_reach_serving_containers_on_the_endpoint_network(
    config: dict[str, Any],
) -> None:
    # Endpoint containers run on the host's engine; 127.0.0.1 inside web is not the host's.
    network = environment_of(config["services"]["web"])["ENDPOINT_NETWORK"]
    names = {key: (value or {}).get("name", key) for key, value in config["networks"].items()}
    assert names.get("serving") == network, names
    for service in ("web", "worker", "control"):
        joined = config["services"][service]["networks"]
        assert {"serving", "default"} <= set(joined), (service, joined)
    for service in ("postgres", "redis", "minio"):
        assert "serving" not in (config["services"][service].get("networks") or {}), service


def test_studio_services_wait_for_healthy_infrastructure(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in INFRASTRUCTURE_WITH_HEALTHCHECKS:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "control", "beat"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["createbucket"]["condition"] == "service_completed_successfully", name
        assert depends_on["redis"]["condition"] == "service_healthy", name
