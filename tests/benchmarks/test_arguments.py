"""The benchmarks' argument errors: one line, exit status 2."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The compile threshold scales with the threads: fix them (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("two_threads")


ROOT = Path(__file__).resolve().parents[2]


def run_bench(monkeypatch, capsys, bench: str, *args: str) -> tuple[int, str]:
    """A benchmark's main() in this process (its imports are already loaded here)."""
    spec = importlib.util.spec_from_file_location(bench, ROOT / "benchmarks" / bench)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [bench, *args])
    try:
        module.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("bench, args, message", [
    ("bench_stylize.py", ["--sizes", "256,x"], "--sizes must be comma-separated integers"),
    ("bench_stylize.py", ["--repeats", "0"], "--repeats must be at least 1"),
    ("bench_train.py", ["--widths", "quarter"], "--widths takes full and/or half"),
    ("bench_train.py", ["--batch", "two"], "argument --batch: invalid int value: 'two'"),
    ("bench_gatys.py", ["--sizes", "8"], "--sizes must each be at least 32 px"),
])
def test_bench_bad_arguments_are_one_line_errors(monkeypatch, capsys, bench, args,
                                                 message) -> None:
    code, err = run_bench(monkeypatch, capsys, bench, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0]


def test_bench_stylize_memory_0x0_in_a_real_process() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_stylize.py"),
                           "--memory", "0x0"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --memory sides must be at least 32 px, got '0x0'"]
