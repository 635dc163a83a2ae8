"""Client commands against a real ASGI server: `whoami` and `audit`."""

from __future__ import annotations

import json

import pytest

from studio.accounts import services
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user
from tests.support import free_port


@pytest.fixture
def studio(asgi_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A running studio with one scientist whose token is in the environment."""
    team = make_team("vision")
    user = make_user(team, role="scientist", username="alice")
    services.membership_set(team=make_team("nlp"), user=user, role="viewer")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(user))
    return asgi_server


def test_whoami_shows_the_user_and_their_teams(
    studio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["whoami"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("alice")
    assert lines[1].split() == ["TEAM", "NAME", "ROLE", "BUCKET"]
    assert {tuple(line.split()) for line in lines[2:]} == {
        ("nlp", "nlp", "viewer", "s3://studiolo-nlp/"),
        ("vision", "vision", "scientist", "s3://studiolo-vision/"),
    }


def test_whoami_json_is_the_api_answer(studio: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["username"] == "alice"
    assert {team["slug"]: team["bucket"] for team in body["teams"]} == {
        "vision": "studiolo-vision",
        "nlp": "studiolo-nlp",
    }


def test_audit_lists_filtered_events(studio: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--team", "nlp", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert events
    assert {event["team"] for event in events} == {"nlp"}

    assert main(["audit", "--action", "membership.", "--limit", "1", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert len(events) == 1
    assert events[0]["action"].startswith("membership.")

    assert main(["audit", "--team", "vision"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["TIME", "ACTOR", "ACTION"]
    assert any("membership.added" in line for line in table[1:])


def test_the_api_error_message_is_shown(
    studio: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUDIOLO_TOKEN", "stl_not-a-real-token")
    assert main(["whoami"]) == 1
    # The in-process test server may log its 401 to the same stderr: look for our line.
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("studiolo: ")]
    assert len(ours) == 1
    err = ours[0]
    assert "STUDIOLO_TOKEN is refused" in err
    assert "Traceback" not in err


def test_an_unreachable_studio_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STUDIOLO_URL", url)
    assert main(["audit"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"studiolo: cannot reach the studio at {url}")
