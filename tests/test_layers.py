"""The layer contract in pyproject.toml ([tool.importlinter]) holds, covers every module, and
catches what it is there for: an upward import, at module level or inside a function.

Breaking it is shown on a copy of the source tree with one import added, checked by the real
`lint-imports` in a child process (in this process the apps are imported already, and
import-linter would find them, not the copy); the unchanged copy is checked the same way, so
a broken test set-up cannot pass for a caught import.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONFIG: dict[str, Any] = PYPROJECT["tool"]["importlinter"]
ROOT_PACKAGES: list[str] = CONFIG["root_packages"]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _layer_modules(layer: str) -> list[str]:
    """The modules of one layer entry: "a : b", "a | b", "(optional)"."""
    return [name.strip().strip("()") for name in re.split(r"[:|]", layer) if name.strip()]


def _contract(contract_id: str) -> dict[str, Any]:
    return next(c for c in CONFIG["contracts"] if c["id"] == contract_id)


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path: the tree analysed is `tree`.
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the first-party packages' Python modules and of pyproject.toml."""
    copy = tmp_path_factory.mktemp("layers")
    for package in ROOT_PACKAGES:
        shutil.copytree(
            ROOT / package,
            copy / package,
            ignore=shutil.ignore_patterns("__pycache__", "templates", "static"),
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_code_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unchanged_copy_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


FUNCTION_IMPORT = """

def _layers_probe() -> object:
    from {imported} import {name}

    return {name}
"""
MODULE_IMPORT = """
import {imported}  # noqa: E402
"""


@pytest.mark.parametrize(
    ("path", "imported", "name", "template", "broken"),
    [
        # The three inversions of issue #14, put back as they were: inside functions.
        pytest.param(
            "experiments/services/retention.py",
            "jobs.models",
            "ACTIVE_STATUSES",
            FUNCTION_IMPORT,
            "experiments is not allowed to import jobs",
            id="experiments-to-jobs-in-a-function",
        ),
        pytest.param(
            "registry/services/approval.py",
            "endpoints.services.lifecycle",
            "endpoints_flag_rejected_package",
            FUNCTION_IMPORT,
            "registry is not allowed to import endpoints",
            id="registry-to-endpoints-in-a-function",
        ),
        pytest.param(
            "studio/health.py",
            "compute.runtime",
            "",
            MODULE_IMPORT,
            "is not allowed to import compute",
            id="studio-to-compute-at-module-level",
        ),
        # Pipelines sit above transform and below the faces.
        pytest.param(
            "transform/services.py",
            "pipelines.services",
            "pipeline_create",
            FUNCTION_IMPORT,
            "transform is not allowed to import pipelines",
            id="transform-to-pipelines-in-a-function",
        ),
        pytest.param(
            "pipelines/services.py",
            "studio.cli.pipelines",
            "create",
            FUNCTION_IMPORT,
            "pipelines is not allowed to import studio.cli",
            id="pipelines-to-the-cli",
        ),
        # The base of studio may not reach the faces, its own wiring included.
        pytest.param(
            "studio/errors.py",
            "studio.urls",
            "urlpatterns",
            FUNCTION_IMPORT,
            "is not allowed to import studio.urls",
            id="studio-base-to-its-wiring",
        ),
        pytest.param(
            "jobs/models.py",
            "frontend.jobs",
            "views",
            FUNCTION_IMPORT,
            "jobs is not allowed to import frontend",
            id="jobs-to-the-ui",
        ),
        # Apps that must not know each other.
        pytest.param(
            "studio/accounts/roles.py",
            "studio.webhooks",
            "services",
            FUNCTION_IMPORT,
            "studio.accounts is not allowed to import studio.webhooks",
            id="accounts-to-webhooks",
        ),
        pytest.param(
            "studio/artifacts/protection.py",
            "studio.webhooks",
            "services",
            FUNCTION_IMPORT,
            "studio.artifacts is not allowed to import studio.webhooks",
            id="artifacts-to-webhooks",
        ),
    ],
)
def test_an_upward_import_breaks_the_contract(
    tree: Path, path: str, imported: str, name: str, template: str, broken: str
) -> None:
    module = tree / path
    original = module.read_text()
    added = template.format(imported=imported, name=name)
    # `original` ends with a newline: the added text's line i is the module's line N + 1 + i.
    offset = next(i for i, text in enumerate(added.splitlines()) if "import" in text)
    line = len(original.splitlines()) + 1 + offset
    importer = path.removesuffix(".py").replace("/", ".")
    try:
        module.write_text(original + added)
        result = _lint(tree)
    finally:
        module.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout, result.stdout
    # The report names the import and its line, wherever in the module it is.
    assert f"{importer} -> {imported}" in result.stdout, result.stdout
    assert f"(l.{line})" in result.stdout, result.stdout


def test_every_first_party_package_is_in_the_graph() -> None:
    """A package left out of root_packages is not analysed at all: its imports, upward ones
    included, would pass unseen."""
    installed = {
        pattern.removesuffix("*")
        for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert set(ROOT_PACKAGES) == installed


def test_every_app_and_every_module_of_studio_has_a_layer() -> None:
    """Layers may not contain one another, so studio's base is listed module by module beside
    its wiring in the faces: a new module of studio must be placed in one or the other."""
    layered = {m for layer in _contract("layers")["layers"] for m in _layer_modules(layer)}
    assert set(ROOT_PACKAGES) - {"studio"} <= layered
    studio = {
        p.stem
        for p in (ROOT / "studio").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert {f"studio.{name}" for name in studio} == {m for m in layered if m.startswith("studio.")}
