"""The training images that scripts/build-images makes: what a job container can rely on.

Needs a live Docker engine: fails under CI=true without one, skips elsewhere. The first run on a
machine builds the base image from Debian packages (a minute or two); later runs find every
image cached and take a few seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import component_missing

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
BUILD_IMAGES = ROOT / "scripts" / "build-images"
ENSURE_DOCKER = ROOT / "scripts" / "ensure-docker"
BASE_IMAGE = "studiolo/python-base:bookworm"
SKLEARN_IMAGE = "studiolo/sklearn:latest"


def run(*command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_image(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return run("docker", "run", "--rm", "--network", "none", image, *command)


def inspect(image: str) -> dict[str, Any]:
    result = run("docker", "image", "inspect", image)
    assert result.returncode == 0, result.stderr
    info: dict[str, Any] = json.loads(result.stdout)[0]
    return info


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None:
        component_missing("the docker CLI is not installed (scripts/ensure-docker installs it)")
    result = run("docker", "info", timeout=30)
    if result.returncode != 0:
        component_missing(f"no Docker engine answers: {result.stderr.strip()[-300:]}")


@pytest.fixture(scope="module")
def images(engine: None) -> str:
    """Builds what is missing or changed; returns the script's report."""
    result = run(BUILD_IMAGES, timeout=1800)
    assert result.returncode == 0, f"build-images failed:\n{result.stderr}\n{result.stdout}"
    return result.stdout


def test_ensure_docker_says_one_line_when_the_engine_runs(engine: None) -> None:
    result = run(ENSURE_DOCKER)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1, result.stdout
    assert "is running" in result.stdout


def test_the_ml_stack_the_toolkit_and_the_client_import_without_network(images: str) -> None:
    result = run_in_image(
        SKLEARN_IMAGE,
        "python3",
        "-c",
        "import sklearn, numpy, scipy, pandas, joblib, studiolo_toolkit, studiolo; studiolo.start_run",
    )
    assert result.returncode == 0, result.stderr


def test_train_and_serve_are_the_toolkits_commands_on_path(images: str) -> None:
    result = run_in_image(
        SKLEARN_IMAGE,
        "sh",
        "-c",
        "for c in train serve; do command -v $c; head -n 20 $(command -v $c); done",
    )
    assert result.returncode == 0, result.stderr
    assert "studiolo_toolkit.training" in result.stdout, result.stdout
    assert "studiolo_toolkit.serving" in result.stdout, result.stdout


def test_image_follows_the_sagemaker_container_contract(images: str) -> None:
    config = inspect(SKLEARN_IMAGE)["Config"]
    labels = config["Labels"] or {}
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
    assert labels.get("io.studiolo.inputs-hash"), labels
    # `docker run IMAGE train` must run `train` itself: no ENTRYPOINT (tini or other) to wrap it.
    assert not config.get("Entrypoint"), config.get("Entrypoint")
    assert config.get("User") in ("", "root", "0", None), "the image must run as root by default"
    assert "8080/tcp" in (config.get("ExposedPorts") or {})


def test_image_offers_an_unprivileged_user_and_the_opt_ml_tree(images: str) -> None:
    result = run_in_image(SKLEARN_IMAGE, "sh", "-c", "id -u studiolo; stat -c %U /opt/ml/model")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000", "studiolo"], result.stdout


def test_base_image_carries_no_compiler_and_no_docs(images: str) -> None:
    result = run_in_image(
        BASE_IMAGE, "sh", "-c", "command -v gcc cc perl; ls /usr/share/man 2>/dev/null; true"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"found in the base image: {result.stdout}"


def test_a_second_build_finds_every_image_cached(images: str) -> None:
    result = run(BUILD_IMAGES, timeout=600)
    assert result.returncode == 0, f"build-images failed:\n{result.stderr}\n{result.stdout}"
    statuses = {
        line.split()[0]: line.split()[1]
        for line in result.stdout.splitlines()
        if line.startswith("studiolo/")
    }
    assert statuses == dict.fromkeys(
        [
            BASE_IMAGE,
            SKLEARN_IMAGE,
            "studiolo/torch-base:bookworm",
            "studiolo/pytorch:latest",
            "studiolo/spark-base:bookworm",
            "studiolo/spark:latest",
        ],
        "cached",
    ), result.stdout
