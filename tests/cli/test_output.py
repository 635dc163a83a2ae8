"""The table printer lines columns up and keeps rows on one line."""

from __future__ import annotations

from studio.cli.output import cell_text, format_table


def test_columns_are_aligned_under_an_upper_case_header() -> None:
    table = format_table(["name", "role"], [["alice", "admin"], ["bob", None]])
    assert table.splitlines() == [
        "NAME   ROLE",
        "alice  admin",
        "bob    -",
    ]


def test_long_cells_are_cut_with_an_ellipsis() -> None:
    text = cell_text("x" * 100, max_width=10)
    assert text == "x" * 9 + "…"
    assert len(text) == 10


def test_cells_never_break_a_row() -> None:
    assert cell_text("two\nlines") == "two lines"
    assert cell_text({"b": 1, "a": [2]}) == '{"a":[2],"b":1}'
    assert cell_text(True) == "yes"
