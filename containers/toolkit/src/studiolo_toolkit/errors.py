"""Errors raised while running a training job, split the way SageMaker's toolkit splits them.

``UserError`` subclasses are caused by the user's code or configuration (a crashing script, a
requirement pip cannot install). ``ToolkitError`` is everything the toolkit itself refuses or
cannot do; it is reported as ``Framework Error: ...``.
"""

from __future__ import annotations

# FailureReason is the first 1024 characters of /opt/ml/output/failure (contract 1.4), so the
# message is shaped to keep the exception line and the command inside that budget.
FAILURE_REASON_LIMIT = 1024
_COMMAND_DISPLAY_LIMIT = 300
_MIN_ERROR_BUDGET = 200


class ToolkitError(Exception):
    """The toolkit cannot run the job (missing entry point, unsupported code location, ...)."""


class JobStoppedError(Exception):
    """A stop signal arrived while no child process was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum} before the user script finished")
        self.signum = signum


class UserError(Exception):
    """A process the user controls (their script, their requirements) failed."""

    def __init__(
        self,
        *,
        command: str,
        exit_code: int,
        error_lines: list[str],
        extra_info: str | None = None,
    ) -> None:
        super().__init__(f"{type(self).__name__}: {command!r} exited with {exit_code}")
        self.command = command
        self.exit_code = exit_code
        self.error_lines = error_lines
        self.extra_info = extra_info

    def failure_message(self, limit: int = FAILURE_REASON_LIMIT) -> str:
        """Render the failure file text the way SageMaker's FailureReason reads.

        ``AlgorithmError: ExecuteUserScriptError:\\nExitCode 1\\nErrorMessage "..."\\n
        Command "...", exit code: 1``. The error text is trimmed from the front (the last lines
        carry the exception) so that the whole message fits in ``limit`` characters.
        """
        command = _shorten_middle(self.command, _COMMAND_DISPLAY_LIMIT)
        head = f'AlgorithmError: {type(self).__name__}:\nExitCode {self.exit_code}\nErrorMessage "'
        extra = f'\nExtraInfo "{self.extra_info}"' if self.extra_info else ""
        tail = f'"{extra}\nCommand "{command}", exit code: {self.exit_code}'
        budget = max(_MIN_ERROR_BUDGET, limit - len(head) - len(tail))
        error_text = "\n".join(self.error_lines).strip("\n")
        if len(error_text) > budget:
            error_text = "…" + error_text[-(budget - 1) :]
        return head + error_text + tail


class ExecuteUserScriptError(UserError):
    """The user's entry point exited non-zero."""


class InstallRequirementsError(UserError):
    """``pip install -r requirements.txt`` failed."""


class InstallModuleError(UserError):
    """``pip install .`` of a user package (``setup.py`` present) failed."""


def _shorten_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = (limit - 1) // 2
    return text[:keep] + "…" + text[-keep:]
