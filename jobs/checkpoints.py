"""A training job's checkpoints on the worker (SageMaker's CheckpointConfig): what is under
the job's checkpoint URI is restored into every instance's checkpoint folder before its
container starts, and every instance's folder is synced to that same URI while the job runs
(as SageMaker does with several instances), with a last pass once the containers have exited,
whatever the outcome: a stopped or failed job keeps its checkpoints for the next job.

The runner calls `restore` for each host while preparing it, `start` once the containers
run and `stop` before collecting the results. Each pass that moved something is one line of
the job's log (files and bytes); the job page shows the last of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from jobs.services.checkpoints import LOG_PREFIX, checkpoint_host_folder
from jobs.sync import FolderSync, SyncPass, folder_restore
from studio.artifacts import ArtifactStore
from studio.artifacts.errors import ArtifactStoreError

Say = Callable[[str], None]  # a system line in the job's log


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class JobCheckpoints:
    """The checkpoint folders of one job's hosts and their syncs. `config` is the job's
    `checkpoint` field ({"uri", "local_path"}); a job without one makes every call a no-op."""

    def __init__(
        self, config: dict[str, str], store: ArtifactStore, *, interval: float, say: Say
    ) -> None:
        self.config = config
        self.store = store
        self.interval = interval
        self.say = say
        self._syncs: dict[str, FolderSync] = {}

    def __bool__(self) -> bool:
        return bool(self.config)

    def folder(self, opt_ml_root: Path) -> Path:
        """The host folder mounted at the container's local path (under /opt/ml)."""
        return opt_ml_root / checkpoint_host_folder(self.config["local_path"])

    def restore(self, host: str, opt_ml_root: Path) -> tuple[int, int]:
        """Put what the URI holds into the host's folder, and write
        /opt/ml/input/config/checkpointconfig.json. Returns (files, bytes)."""
        if not self:
            return 0, 0
        uri, local_path = self.config["uri"], self.config["local_path"]
        config_file = opt_ml_root / "input" / "config" / "checkpointconfig.json"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps({"S3Uri": uri, "LocalPath": local_path}))
        files, size = folder_restore(
            self.store, self.store.key_from_uri(uri), self.folder(opt_ml_root)
        )
        if files:
            self.say(
                f"{LOG_PREFIX}restored {files} file(s) ({_megabytes(size)}) from {uri} "
                f"into {local_path} on {host}"
            )
        else:
            self.say(f"{LOG_PREFIX}nothing under {uri} yet; {local_path} starts empty on {host}")
        return files, size

    def start(self, hosts: dict[str, Path]) -> None:
        """Sync each host's folder (host name -> its /opt/ml folder) from now on."""
        if not self:
            return
        key = self.store.key_from_uri(self.config["uri"])
        for host, root in hosts.items():
            folder = self.folder(root)
            folder.mkdir(parents=True, exist_ok=True)
            sync = FolderSync(
                self.store,
                key,
                folder,
                interval=self.interval,
                on_pass=self._reporter(host),
                on_error=self._error_reporter(host),
                name=f"checkpoints-{host}",
            )
            sync.start()
            self._syncs[host] = sync

    def stop(self) -> None:
        """Stop every sync after a last full pass. A last pass that fails is logged, not
        raised: the job's own outcome must not be hidden by it."""
        syncs, self._syncs = self._syncs, {}
        for host, sync in syncs.items():
            try:
                totals = sync.stop()
            except ArtifactStoreError as exc:
                self.say(f"{LOG_PREFIX}the last sync from {host} failed: {exc.message}")
                continue
            self.say(
                f"{LOG_PREFIX}{host} synced {totals.files} file(s) ({_megabytes(totals.bytes)}) "
                f"to {self.config['uri']} in all"
                + (f", deleted {totals.deleted}" if totals.deleted else "")
            )

    def _error_reporter(self, host: str) -> Callable[[ArtifactStoreError], None]:
        def report(exc: ArtifactStoreError) -> None:
            self.say(f"{LOG_PREFIX}sync from {host} failed, trying again: {exc.message}")

        return report

    def _reporter(self, host: str) -> Callable[[SyncPass], None]:
        uri = self.config["uri"]

        def report(done: SyncPass) -> None:
            text = f"{LOG_PREFIX}{host} synced {done.files} file(s) ({_megabytes(done.bytes)}) to {uri}"
            if done.deleted:
                text += f", deleted {done.deleted} removed from {self.config['local_path']}"
            self.say(text)

        return report
