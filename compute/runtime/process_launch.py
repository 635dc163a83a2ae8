"""How the process runtime runs a container spec: the command, environment, working folder
and memory limit of the local process standing in for the container, and the refusal of what
a process cannot do (see compute/runtime/process.py for the mapping as a whole)."""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import os
import posixpath
import sys
from pathlib import Path
from typing import Any

from compute.runtime.base import ContainerSpec, RuntimeUnavailable
from studio.errors import ValidationError

OPT_ML = "/opt/ml"
SERVING_PORT = 8080
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
BIND_TO_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
TOOLKIT_SRC = Path(__file__).resolve().parents[2] / "containers" / "toolkit" / "src"
TOOLKIT_COMMANDS = {"train": "studiolo_toolkit.training", "serve": "studiolo_toolkit.serving"}
HOST_ENV = ("PATH", "HOME", "LANG")


def process_launch(spec: ContainerSpec) -> dict[str, Any]:
    """argv, env, cwd and memory limit for the spec; raises ValidationError for what a
    process cannot do."""
    base_dir: Path | None = None
    for mount in spec.mounts:
        if posixpath.normpath(mount.target) != OPT_ML:
            raise ValidationError(
                f"mount {mount.source} -> {mount.target}: the process runtime supports only "
                f"a mount on {OPT_ML} (there is no container file system)",
                field="mounts",
            )
        if mount.read_only:
            raise ValidationError(
                f"mount {mount.source} -> {mount.target}: the process runtime cannot make "
                "it read-only",
                field="mounts",
            )
        base_dir = Path(mount.source).resolve()
    if spec.user is not None and spec.user not in _own_user_names():
        raise ValidationError(
            f"user {spec.user!r}: the process runtime runs everything as the worker's user",
            field="user",
        )
    unsupported_ports = set(spec.ports) - {SERVING_PORT}
    if unsupported_ports:
        raise ValidationError(
            f"ports {sorted(unsupported_ports)}: the process runtime can only publish the "
            f"serving port {SERVING_PORT}",
            field="ports",
        )

    uses_toolkit = False
    if spec.entrypoint:
        argv = [*spec.entrypoint, *(spec.command or [])]
    elif spec.command:
        module = TOOLKIT_COMMANDS.get(spec.command[0])
        if module is not None:
            uses_toolkit = True
            argv = [sys.executable, "-m", module, *spec.command[1:]]
        else:
            argv = list(spec.command)
    else:
        raise ValidationError(
            "the process runtime has no image whose command it could fall back on: give a command",
            field="command",
        )

    env = {key: os.environ[key] for key in HOST_ENV if key in os.environ}
    # The images set it; here output goes to files, where Python would buffer it by block.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(spec.env)
    if uses_toolkit:
        if TOOLKIT_SRC.is_dir():
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(TOOLKIT_SRC), env.get("PYTHONPATH", "")) if p
            )
        elif importlib.util.find_spec("studiolo_toolkit") is None:
            raise RuntimeUnavailable(
                "process runtime: the Studiolo toolkit is neither installed nor found "
                f"at {TOOLKIT_SRC}"
            )
    if base_dir is not None:
        base_dir.mkdir(parents=True, exist_ok=True)
        env[BASE_DIR_ENV] = str(base_dir)

    cwd: Path | None = None
    if spec.workdir:
        workdir = posixpath.normpath(spec.workdir)
        if base_dir is not None and (workdir == OPT_ML or workdir.startswith(OPT_ML + "/")):
            cwd = base_dir / workdir[len(OPT_ML) :].lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        elif Path(workdir).is_dir():
            cwd = Path(workdir)
        else:
            raise ValidationError(
                f"workdir {spec.workdir!r} does not exist on this host", field="workdir"
            )
    return {
        "argv": argv,
        "env": env,
        "cwd": str(cwd) if cwd is not None else None,
        "memory_bytes": spec.memory_bytes,
    }


def _own_user_names() -> set[str]:
    uid, gid = os.getuid(), os.getgid()
    names = {str(uid), f"{uid}:{gid}"}
    with contextlib.suppress(Exception):
        user = getpass.getuser()
        names |= {user, f"{user}:{gid}"}
    return names
