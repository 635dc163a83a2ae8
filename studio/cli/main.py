"""`studiolo`: run, administer and use a Studiolo instance from the command line.

Every command ends in one of three ways: its own exit code, `studiolo: <message>` with
exit 1 for a domain error (never a traceback), or `studiolo: configuration error:
<message>` with exit 2 when a setting is bad.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from studio.cli import (
    admin,
    artifacts,
    doctor,
    endpoints,
    experiments,
    jobs,
    models,
    pipelines,
    processing,
    remote,
    server,
    transform,
    up,
)
from studio.cli.common import CliError
from studio.config import ConfigError
from studio.errors import StudioloError

Handler = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return version("studiolo")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studiolo",
        description="Studiolo, a self-hosted ML studio. `studiolo up` runs it all; "
        "see docs/cli.md for every command.",
    )
    parser.add_argument("--version", action="version", version=f"studiolo {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up.register(commands)
    server.register(commands)
    doctor.register(commands)
    admin.register(commands)
    remote.register(commands)
    artifacts.register(commands)
    jobs.register(commands)
    transform.register(commands)
    processing.register(commands)
    models.register(commands)
    endpoints.register(commands)
    experiments.register(commands)
    pipelines.register(commands)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"studiolo: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        # `--arg --split=0.2`: a program's arguments may start with `--` (studiolo process).
        args = parser.parse_args(processing.join_arg_values(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version and usage errors (exit 2)
        return exc.code if isinstance(exc.code, int) else 2
    handler: Handler = args.func
    try:
        return handler(args)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", 2)
    except CliError as exc:
        return _fail(exc.message, exc.code)
    except StudioloError as exc:
        return _fail(exc.message, 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
