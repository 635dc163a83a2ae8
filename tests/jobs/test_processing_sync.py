"""S3UploadMode Continuous: each pass uploads what is new or changed since the last one, and
nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from jobs.processing import ContinuousUpload
from jobs.processing_contract import ProcessingOutput
from studio.artifacts.local import LocalArtifactStore

OUTPUT: ProcessingOutput = {
    "name": "out",
    "uri": "",
    "local_path": "/opt/ml/processing/out",
    "upload_mode": "Continuous",
}


def test_each_pass_uploads_only_new_or_changed_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    folder = tmp_path / "out"
    folder.mkdir()
    output: ProcessingOutput = {**OUTPUT, "uri": store.uri("teams/lab/out")}
    sync = ContinuousUpload(store, [(output, folder)], job_id=1)
    assert sync.sync_once() == 0
    (folder / "a.txt").write_text("1")
    assert sync.sync_once() == 1
    assert sync.sync_once() == 0  # unchanged
    (folder / "a.txt").write_text("22")
    os.utime(folder / "a.txt", ns=(1, 2_000_000_000))
    (folder / "b.txt").write_text("3")
    assert sync.sync_once() == 2
    assert store.get("teams/lab/out/a.txt") == b"22"
    assert store.get("teams/lab/out/b.txt") == b"3"
