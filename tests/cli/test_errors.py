"""How `studiolo` fails: one line on stderr, a meaningful exit code, never a traceback."""

from __future__ import annotations

import pytest

from studio.cli.main import main
from tests.cli.support import clean_env, run_studiolo, short_home


def test_a_bad_setting_exits_2_with_one_line_naming_it() -> None:
    with short_home() as home:
        result = run_studiolo("doctor", env=clean_env(home, RUNTIME="bogus"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("studiolo: configuration error: RUNTIME:")


def test_admin_commands_on_an_unmigrated_database_say_to_migrate_first() -> None:
    with short_home() as home:
        result = run_studiolo("user", "list", env=clean_env(home))
    assert result.returncode == 1
    assert "run `studiolo migrate` or `studiolo up` first" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["web", "worker", "beat"])
def test_single_components_refuse_to_run_without_redis_url(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert "REDIS_URL" in err
    assert "studiolo up" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fly"]) == 2
    assert "invalid choice" in capsys.readouterr().err
