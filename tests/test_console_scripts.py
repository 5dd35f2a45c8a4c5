"""Every console script in pyproject.toml is installed and answers `--help` (run together)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess]:
    missing = [name for name in SCRIPTS if not (BIN / name).is_file()]
    if missing:
        pytest.fail(f"not installed in {BIN}: {', '.join(missing)}; run make install")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = {name: subprocess.Popen([str(BIN / name), "--help"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for name in SCRIPTS}
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_answers_help(helps, name) -> None:
    proc = helps[name]
    assert proc.returncode == 0, proc.stderr[-2000:]
    # argparse apps print their usage line; Hydra apps their config groups
    assert f"usage: {name}" in proc.stdout or "== Configuration groups ==" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_train_script_composes_the_same_config_as_train_py() -> None:
    args = ["experiment=local", "style=udnie", "--cfg", "job"]
    script = subprocess.run([str(BIN / "fast-nst-train"), *args], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    direct = subprocess.run([sys.executable, str(ROOT / "train.py"), *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert script.returncode == 0 and direct.returncode == 0, script.stderr + direct.stderr
    assert "style_name: udnie" in script.stdout or "name: udnie" in script.stdout
    assert script.stdout == direct.stdout
