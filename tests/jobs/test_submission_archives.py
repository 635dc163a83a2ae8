"""A source archive past a limit is refused at submission, from its headers alone: a 400 on
`source_uri` naming the limit, in a fraction of a second, with nothing unpacked."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import pytest

from jobs.models import Job
from studio.artifacts import get_store
from tests.jobs.test_submission import post, team_client, valid_request  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    settings.RUNTIME = "process"  # every image "exists"


def archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def submit(team_client: Any, data: bytes) -> Any:  # noqa: F811 - the fixture's value
    store = get_store()
    store.put("teams/lab/code/src.tar.gz", data)
    return post(team_client, valid_request(source_uri=store.uri("teams/lab/code/src.tar.gz")))


def assert_refused(response: Any, limit: str) -> str:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == "source_uri"
    assert error["code"] == "archive_refused"
    assert f"({limit})" in error["message"]
    assert "/tmp" not in error["message"]  # the key, never the store's folder on the host
    assert not Job.objects.exists()
    return str(error["message"])


def test_an_archive_bomb_is_refused_by_its_ratio_with_the_default_limits(
    team_client: Any,  # noqa: F811
) -> None:
    # 8 MiB of zeros ahead of the entry point: a few KB, more than 200 times that unpacked.
    data = archive({"weights.bin": bytes(8 * MIB), "train.py": b"print('hi')\n"})
    assert len(data) < 16 * 1024
    started = time.monotonic()
    message = assert_refused(submit(team_client, data), "ARCHIVE_MAX_RATIO")
    assert time.monotonic() - started < 10  # generous: the headers alone are read
    assert "source archive teams/lab/code/src.tar.gz is refused" in message


def test_an_archive_past_the_total_size_is_refused(team_client: Any, settings: Any) -> None:  # noqa: F811
    settings.ARCHIVE_MAX_EXPANDED_MB = 1
    settings.ARCHIVE_MAX_RATIO = 100_000
    data = archive({"weights.bin": bytes(2 * MIB), "train.py": b"print('hi')\n"})
    message = assert_refused(submit(team_client, data), "ARCHIVE_MAX_EXPANDED_MB")
    assert "more than 1 MiB" in message


def test_an_archive_of_too_many_files_is_refused(team_client: Any, settings: Any) -> None:  # noqa: F811
    settings.ARCHIVE_MAX_FILES = 50
    data = archive({"train.py": b"print('hi')\n", **{f"data/{i}.txt": b"" for i in range(60)}})
    message = assert_refused(submit(team_client, data), "ARCHIVE_MAX_FILES")
    assert "more than 50 files" in message


def test_an_archive_with_an_escaping_member_is_refused(team_client: Any) -> None:  # noqa: F811
    data = archive({"train.py": b"print('hi')\n", "../../etc/cron.d/x": b"* * * * * root x\n"})
    response = submit(team_client, data)
    assert response.status_code == 400, response.content
    assert "leaves the archive's folder" in response.json()["error"]["message"]


def test_an_entry_point_beyond_what_a_request_reads_is_left_to_the_worker(
    team_client: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    monkeypatch.setattr("jobs.services.submission.SUBMISSION_SCAN_BYTES", MIB)
    settings.ARCHIVE_MAX_RATIO = 100_000
    data = archive({"data.bin": bytes(2 * MIB), "missing-here.py": b""})
    response = submit(team_client, data)
    # Not known to be missing (the scan stopped at its budget): the worker checks it.
    assert response.status_code == 201, response.content
