"""Which commands run for which kind of entry point (TTK ``_entry_point_type``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studiolo_toolkit.entry_point import READ_ONLY_USER_BASE, EntryPointType, plan_entry_point
from studiolo_toolkit.errors import (
    ExecuteUserScriptError,
    InstallModuleError,
    InstallRequirementsError,
    ToolkitError,
)

PY = "/usr/bin/python3"


def test_a_python_program_runs_with_the_interpreter_and_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")

    plan = plan_entry_point(str(tmp_path), "train.py", ["--epochs", "10"], python=PY)

    assert plan.kind is EntryPointType.PYTHON_PROGRAM
    assert plan.install == []
    assert plan.run.command == [PY, "train.py", "--epochs", "10"]
    assert plan.run.error is ExecuteUserScriptError


def test_a_requirements_file_is_pip_installed_first_without_prompts(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "requirements.txt").write_text("numpy\n")

    plan = plan_entry_point(str(tmp_path), "train.py", [], python=PY)

    [install] = plan.install
    assert install.command == [PY, "-m", "pip", "install", "--no-input", "-r", "requirements.txt"]
    assert install.error is InstallRequirementsError
    assert install.extra_env == {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert install.tee_stdout is True


def test_in_a_container_pip_may_install_into_the_images_externally_managed_python(
    tmp_path: Path,
) -> None:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "requirements.txt").write_text("numpy\n")

    plan = plan_entry_point(str(tmp_path), "train.py", [], python=PY, in_container=True)

    [install] = plan.install
    assert install.extra_env["PIP_BREAK_SYSTEM_PACKAGES"] == "1"


def test_a_setup_py_makes_a_package_installed_with_pip_and_run_as_a_module(
    tmp_path: Path,
) -> None:
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")

    plan = plan_entry_point(str(tmp_path), "trainer.py", ["-k", "1"], python=PY)

    assert plan.kind is EntryPointType.PYTHON_PACKAGE
    [install] = plan.install
    assert install.command == [
        PY, "-m", "pip", "install", "--no-input", ".", "-r", "requirements.txt",
    ]  # fmt: skip
    assert install.error is InstallModuleError
    assert plan.run.command == [PY, "-m", "trainer", "-k", "1"]


def test_a_shell_script_is_made_executable_and_execed_with_quoted_arguments(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)

    plan = plan_entry_point(str(tmp_path), "train.sh", ["--layers", "[64, 32]"], python=PY)

    assert plan.kind is EntryPointType.COMMAND
    assert plan.run.command == ["/bin/sh", "-c", "exec ./train.sh --layers '[64, 32]'"]
    assert os.access(script, os.X_OK)


def test_any_other_file_is_run_as_a_command(tmp_path: Path) -> None:
    (tmp_path / "train").write_text("#!/bin/sh\n")

    plan = plan_entry_point(str(tmp_path), "train", [], python=PY)

    assert plan.kind is EntryPointType.COMMAND
    assert plan.run.command == ["/bin/sh", "-c", "exec ./train"]


def test_a_missing_entry_point_file_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError, match="entry point 'train.py' not found"):
        plan_entry_point(str(tmp_path), "train.py", [], python=PY)


def test_no_program_at_all_is_an_error() -> None:
    with pytest.raises(ToolkitError, match="sagemaker_program"):
        plan_entry_point("/nowhere", None, [], python=PY)


@pytest.mark.parametrize("program", ["train.py", "setup.py"])
def test_in_a_read_only_image_requirements_go_to_a_user_site_the_script_then_finds(
    tmp_path: Path, program: str
) -> None:
    (tmp_path / program).write_text("")
    (tmp_path / "requirements.txt").write_text("numpy\n")

    plan = plan_entry_point(
        str(tmp_path), "train.py", [], python=PY, in_container=True, site_writable=False
    )

    [install] = plan.install
    assert install.command[:6] == [PY, "-m", "pip", "install", "--no-input", "--user"]
    assert install.extra_env["PYTHONUSERBASE"] == READ_ONLY_USER_BASE
    assert plan.run.extra_env == {"PYTHONUSERBASE": READ_ONLY_USER_BASE}
    assert READ_ONLY_USER_BASE.startswith("/tmp/")  # noqa: S108 - the container's /tmp


def test_a_writable_image_or_no_container_installs_as_before(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "requirements.txt").write_text("numpy\n")

    for in_container, writable in ((True, True), (False, False)):
        plan = plan_entry_point(
            str(tmp_path),
            "train.py",
            [],
            python=PY,
            in_container=in_container,
            site_writable=writable,
        )
        [install] = plan.install
        assert "--user" not in install.command
        assert "PYTHONUSERBASE" not in install.extra_env
        assert plan.run.extra_env == {}
