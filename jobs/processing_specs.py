"""The one-line forms of a processing input and output, shared by `studiolo process` and the
"New processing job" page (standard library only: the client imports it without Django).

- input: `SOURCE[:LOCAL_PATH][:sharded|:replicated]`; SOURCE may hold `:` of its own
  (`s3://...`): the local path is the part from the last `:/opt/ml/processing/`.
- output: `LOCAL_PATH[:URI][:continuous|:endofjob]`.
"""

from __future__ import annotations

LOCAL_ROOT = "/opt/ml/processing/"
DISTRIBUTIONS = {"sharded": "ShardedByS3Key", "replicated": "FullyReplicated"}
UPLOAD_MODES = {"continuous": "Continuous", "endofjob": "EndOfJob"}


def split_input(value: str) -> tuple[str, str, str]:
    """(source, local path or "", distribution)."""
    source, distribution = value, "FullyReplicated"
    head, sep, tail = value.rpartition(":")
    if sep and tail.lower() in DISTRIBUTIONS:
        source, distribution = head, DISTRIBUTIONS[tail.lower()]
    local_path = ""
    cut = source.rfind(":" + LOCAL_ROOT)
    if cut > 0:
        source, local_path = source[:cut], source[cut + 1 :]
    if not source:
        raise ValueError("no source before the local path")
    return source, local_path, distribution


def split_output(value: str) -> tuple[str, str, str]:
    """(local path, URI or "", upload mode)."""
    rest, mode = value, "EndOfJob"
    head, sep, tail = value.rpartition(":")
    if sep and tail.lower() in UPLOAD_MODES:
        rest, mode = head, UPLOAD_MODES[tail.lower()]
    local_path, _, uri = rest.partition(":")
    if not local_path.startswith(LOCAL_ROOT):
        raise ValueError(f"the local path comes first and is under {LOCAL_ROOT}")
    return local_path, uri, mode
