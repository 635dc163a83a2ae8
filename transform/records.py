"""Splitting one input object into requests, and assembling the model's answers.

Pure file work, no database and no HTTP. The semantics are contract section 3's and the
SageMaker SDK's local mode (`sagemaker.local.data`), which real SageMaker matches:

- each input object is processed on its own: a request never spans two objects;
- SplitType `None`: the whole object is one request (one record, for progress);
- SplitType `Line`: every line is a record, sent with its line break, blank lines included
  (so that the n-th answer belongs to the n-th input line);
- BatchStrategy `SingleRecord`: one record per request; `MultiRecord`: as many whole records
  as fit in MaxPayloadInMB (MB = 1024 × 1024 bytes, as the serving toolkit counts); a record
  larger than that fails the job, since no request could carry it;
- AssembleWith `Line`: each answer is followed by one line break. An answer that already ends
  with line breaks has them replaced by that one (a CSV answer "7\\n8\\n" for two records
  stays two lines, with no blank line between requests; the SDK's local mode strips answers
  the same way). `None`: the answers are concatenated as they came.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioloError

SPLIT_TYPES = ("None", "Line")
BATCH_STRATEGIES = ("SingleRecord", "MultiRecord")
ASSEMBLE_WITH = ("None", "Line")
MB = 1024 * 1024
_READ_SIZE = 1024 * 1024


class RecordTooLarge(StudioloError):
    """A record (or a whole object, for SplitType None) exceeds MaxPayloadInMB."""


@dataclass(frozen=True)
class Batch:
    payload: bytes
    first_record: int  # 1-based number of its first record within the object
    records: int


def count_records(path: Path, split_type: str) -> int:
    """How many records `batches` will yield for this object, without holding it in memory."""
    if split_type != "Line":
        return 1
    lines = 0
    last = b"\n"
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_SIZE):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (0 if last == b"\n" else 1)


def batches(path: Path, *, split_type: str, strategy: str, max_bytes: int) -> Iterator[Batch]:
    """The requests for one object, in order."""
    if split_type != "Line":
        size = path.stat().st_size
        if size > max_bytes:
            raise RecordTooLarge(
                f"the object is {size} bytes, more than MaxPayloadInMB ({max_bytes // MB} MB) "
                "allows in one request; split it with SplitType Line or raise MaxPayloadInMB"
            )
        yield Batch(path.read_bytes(), 1, 1)
        return
    pending: list[bytes] = []
    pending_size = 0
    first = 1
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            if len(line) > max_bytes:
                raise RecordTooLarge(
                    f"record {number} is {len(line)} bytes, more than MaxPayloadInMB "
                    f"({max_bytes // MB} MB) allows in one request"
                )
            if strategy == "SingleRecord":
                yield Batch(line, number, 1)
                continue
            if pending and pending_size + len(line) > max_bytes:
                yield Batch(b"".join(pending), first, len(pending))
                pending, pending_size = [], 0
            if not pending:
                first = number
            pending.append(line)
            pending_size += len(line)
    if pending:
        yield Batch(b"".join(pending), first, len(pending))


def assemble(answer: bytes, assemble_with: str) -> bytes:
    """What goes into the `.out` object for one answer."""
    if assemble_with == "Line":
        return answer.rstrip(b"\r\n") + b"\n"
    return answer
