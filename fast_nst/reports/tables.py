"""Reports of the studies and benchmarks: CSV files, Markdown tables and matplotlib figures,
all written atomically (a crash never leaves half a file)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fast_nst.core.images import atomic_path


def write_csv(rows: list[dict[str, float]], path: Path) -> Path:
    """Rows of dicts (union of keys, in first-seen order) to a CSV file, atomically."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of dicts -> a GitHub Markdown table (floats in 4 significant digits)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("\n", " ").replace("|", "/")

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)
    return path



def write_text(text: str, path: Path) -> None:
    """A text file (a Markdown report), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
