"""The pieces behind log pass-through and failure messages."""

from __future__ import annotations

from studiolo_toolkit.errors import ExecuteUserScriptError
from studiolo_toolkit.process import OutputTail, exit_status


def test_the_tail_keeps_only_the_last_lines_across_chunk_boundaries() -> None:
    tail = OutputTail(max_lines=3)

    for i in range(10):
        tail.feed(f"line {i}".encode())
        tail.feed(b"\n")
    tail.feed(b"partial without newline")

    assert tail.lines() == ["line 8", "line 9", "partial without newline"]


def test_progress_bars_redrawn_with_carriage_returns_keep_only_their_last_state() -> None:
    tail = OutputTail()

    tail.feed(b" 10%|#   |\r 50%|#####|\r100%|##########|\r\n")
    tail.feed(b"x" * 100_000)  # a never-ending line stays bounded

    lines = tail.lines()
    assert lines[0] == "100%|##########|"
    assert len(lines[1]) == 4096


def test_invalid_utf8_in_stderr_does_not_break_the_tail() -> None:
    tail = OutputTail()

    tail.feed(b"caf\xe9 error\n")

    assert tail.lines() == ["caf\ufffd error"]


def test_death_by_signal_is_reported_as_128_plus_the_signal_number() -> None:
    assert exit_status(-15) == 143
    assert exit_status(0) == 0
    assert exit_status(3) == 3


def test_a_long_error_is_trimmed_from_the_front_to_fit_a_failure_reason() -> None:
    error = ExecuteUserScriptError(
        command="python train.py " + "--x " * 200,
        exit_code=1,
        error_lines=[f"frame {i}" for i in range(500)] + ["ValueError: the real cause"],
    )

    message = error.failure_message()

    assert len(message) <= 1024
    assert message.startswith(
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "…'
    )
    assert 'ValueError: the real cause"\nCommand "python train.py' in message
    assert message.endswith('", exit code: 1')
