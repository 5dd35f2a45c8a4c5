"""fast_nst.reports.tables: Markdown tables."""

from __future__ import annotations

from fast_nst.reports.tables import markdown_table


def test_markdown_table() -> None:
    text = markdown_table([{"a": 1.23456789, "b": "x|y"}, {"a": 2, "c": "z"}])
    assert text.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1.235 | x/y |  |",
                                 "| 2 |  | z |"]
