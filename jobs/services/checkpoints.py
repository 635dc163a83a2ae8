"""CheckpointConfig on a training job: where the instances' checkpoint folder is kept in the
store, checked at submission.

A job with a checkpoint config finds the files under its URI in its local path when it
starts, and what it writes there is synced to the URI while it runs and once more when it
ends, however it ends (jobs/checkpoints.py, jobs/sync.py): a stopped or failed job keeps its
checkpoints, and the next job given the same URI resumes from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from studio.accounts.models import Team
from studio.artifacts import ArtifactStore
from studio.artifacts.keys import team_prefix
from studio.errors import ValidationError

DEFAULT_LOCAL_PATH = "/opt/ml/checkpoints"
OPT_ML = PurePosixPath("/opt/ml")
# Folders of /opt/ml the platform fills or collects itself: a checkpoint folder in (or
# around) one of them would have its files mixed with, or replaced by, the platform's.
RESERVED = tuple(
    OPT_ML / name for name in ("input", "model", "output", "code", "config", "processing")
)
MAX_LOCAL_PATH = 4096  # SageMaker's limits for LocalPath and S3Uri
MAX_URI = 1024
# Every log line about a job's checkpoints starts so; the job page shows the last one.
LOG_PREFIX = "Checkpoints: "
URI_FIELD = "checkpoint_config.s3_uri"
PATH_FIELD = "checkpoint_config.local_path"

# jobs.services.submission.key_in_team, passed in (submission imports this module).
KeyCheck = Callable[[ArtifactStore, Team, str, str], str]


def checkpoint_config_clean(
    *, store: ArtifactStore, team: Team, raw: Mapping[str, object] | None, key_in_team: KeyCheck
) -> dict[str, str]:
    """The request's `checkpoint_config` (`s3_uri` or `uri`, optional `local_path`) as the
    job stores it: {"uri": <the store's URI of the folder>, "local_path": ...}; {} for none.

    The URI names a folder of the team's area (it need not exist yet: the first job makes
    it); the local path is a folder under /opt/ml that the platform does not use itself.
    """
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError("checkpoint_config: expected an object", field="checkpoint_config")
    unknown = set(raw) - {"s3_uri", "uri", "local_path"}
    if unknown:
        raise ValidationError(
            f"checkpoint_config: unknown field(s) {', '.join(sorted(unknown))} "
            "(s3_uri or uri, local_path)",
            field="checkpoint_config",
        )
    uri = raw.get("s3_uri") or raw.get("uri")
    if raw.get("s3_uri") and raw.get("uri") and raw["s3_uri"] != raw["uri"]:
        raise ValidationError(f"{URI_FIELD}: give s3_uri or uri, not both", field=URI_FIELD)
    if not isinstance(uri, str) or not uri.strip():
        raise ValidationError(
            f"{URI_FIELD}: the URI of a folder in your team's area is required", field=URI_FIELD
        )
    if len(uri) > MAX_URI:
        raise ValidationError(f"{URI_FIELD}: at most {MAX_URI} characters", field=URI_FIELD)
    key = key_in_team(store, team, uri, URI_FIELD).rstrip("/")
    if key + "/" == team_prefix(team):
        # Restoring would copy the whole area into every instance.
        raise ValidationError(
            f"{URI_FIELD}: a folder inside your team's area, not the area itself",
            field=URI_FIELD,
        )
    if store.exists(key):
        raise ValidationError(
            f"{URI_FIELD}: {uri} is a file; checkpoints go to a folder", field=URI_FIELD
        )
    return {"uri": store.uri(key).rstrip("/"), "local_path": checkpoint_local_path(raw)}


def checkpoint_local_path(raw: Mapping[str, object]) -> str:
    value = raw.get("local_path") or DEFAULT_LOCAL_PATH
    rule = (
        f"{PATH_FIELD}: an absolute folder under /opt/ml (default {DEFAULT_LOCAL_PATH}), "
        "outside /opt/ml/input, /opt/ml/model, /opt/ml/output, /opt/ml/code, /opt/ml/config "
        "and /opt/ml/processing"
    )
    if not isinstance(value, str) or len(value) > MAX_LOCAL_PATH or "\x00" in value:
        raise ValidationError(rule, field=PATH_FIELD)
    path = PurePosixPath(value)
    # PurePosixPath drops "." and a trailing "/", keeps ".."; "//x" stays distinct.
    if (
        not value.startswith("/")
        or value.startswith("//")
        or ".." in path.parts
        or path == OPT_ML
        or not path.is_relative_to(OPT_ML)
        or any(path.is_relative_to(reserved) for reserved in RESERVED)
    ):
        raise ValidationError(rule, field=PATH_FIELD)
    return str(path)


def checkpoint_host_folder(local_path: str) -> PurePosixPath:
    """Where, relative to an instance's /opt/ml folder on the worker, its checkpoints are."""
    return PurePosixPath(local_path).relative_to(OPT_ML)
