"""Splitting input objects into requests and assembling answers (pure functions), and how a
model's error answer is quoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from transform.client import error_message
from transform.records import Batch, RecordTooLarge, assemble, batches, count_records


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"", 0),
        (b"1\n", 1),
        (b"1\n2", 2),
        (b"1\n\n3\n", 3),  # a blank line is a record: answers stay aligned with lines
        (b"x" * 3_000_000 + b"\n" + b"y", 2),  # counted across read chunks
    ],
)
def test_line_records_are_counted_as_the_batches_will_send_them(
    tmp_path: Path, data: bytes, records: int
) -> None:
    path = write(tmp_path, data)
    assert count_records(path, "Line") == records
    sent = list(batches(path, split_type="Line", strategy="SingleRecord", max_bytes=10**7))
    assert sum(batch.records for batch in sent) == records


def test_multi_record_packs_whole_lines_up_to_the_payload_limit(tmp_path: Path) -> None:
    path = write(tmp_path, b"aaaa\nbbbb\ncccc\nddddddd\ne")  # 5, 5, 5, 8 and 1 bytes
    sent = list(batches(path, split_type="Line", strategy="MultiRecord", max_bytes=10))
    assert sent == [
        Batch(b"aaaa\nbbbb\n", first_record=1, records=2),
        Batch(b"cccc\n", first_record=3, records=1),
        Batch(b"ddddddd\ne", first_record=4, records=2),
    ]
    assert all(len(batch.payload) <= 10 for batch in sent)


def test_single_record_sends_each_line_with_its_line_break(tmp_path: Path) -> None:
    path = write(tmp_path, b"1,2\n3,4\n")
    sent = list(batches(path, split_type="Line", strategy="SingleRecord", max_bytes=100))
    assert sent == [Batch(b"1,2\n", 1, 1), Batch(b"3,4\n", 2, 1)]


def test_a_record_larger_than_the_payload_limit_is_refused_by_number(tmp_path: Path) -> None:
    path = write(tmp_path, b"ok\n" + b"z" * 20 + b"\n")
    with pytest.raises(RecordTooLarge, match="record 2 is 21 bytes"):
        list(batches(path, split_type="Line", strategy="MultiRecord", max_bytes=10))


def test_split_type_none_sends_the_whole_object_once(tmp_path: Path) -> None:
    path = write(tmp_path, b"1\n2\n3\n")
    assert count_records(path, "None") == 1
    assert list(batches(path, split_type="None", strategy="", max_bytes=100)) == [
        Batch(b"1\n2\n3\n", 1, 1)
    ]
    with pytest.raises(RecordTooLarge, match="the object is 6 bytes"):
        list(batches(path, split_type="None", strategy="", max_bytes=5))


@pytest.mark.parametrize(
    ("answer", "assemble_with", "written"),
    [
        (b"7", "Line", b"7\n"),
        (b"7\n8\n", "Line", b"7\n8\n"),  # no blank line when the answer ends a line already
        (b"7\r\n", "Line", b"7\n"),
        (b"", "Line", b"\n"),
        (b"[7, 8]", "None", b"[7, 8]"),
        (b"7\n", "None", b"7\n"),
    ],
)
def test_answers_are_assembled_as_assemble_with_says(
    answer: bytes, assemble_with: str, written: bytes
) -> None:
    assert assemble(answer, assemble_with) == written


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "ValueError", "error-message": "bad row"}', "ValueError: bad row"),
        (b'{"message": "no"}', "no"),
        (b"plain text\n", "plain text"),
        (b"", "(empty body)"),
        (b"x" * 600, "x" * 500 + "…"),
    ],
)
def test_a_models_error_answer_is_quoted_by_its_message(body: bytes, message: str) -> None:
    assert error_message(body) == message
