"""The package's imports point one way: down the layers of docs/design.md.

Each top-level module or folder of `fast_nst` is a unit, and `ALLOWED` says which other units
it may import (a unit always imports itself). Every import counts, at the top of a file or
inside a function. A new unit must be added to the table, in its place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fast_nst"

BASE = {"errors", "configs", "safe_load", "device", "precision"}
PATHS = {"optimizer", "inference", "training"}  # the three ways to make an image
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "configs": {"errors"},
    "safe_load": {"errors"},
    "device": {"errors"},
    "precision": {"errors", "device"},
    "core": BASE,
    "model": BASE | {"core"},
    "optimizer": BASE | {"core"},
    "inference": BASE | {"core", "model"},
    "training": BASE | {"core", "model", "optimizer"},  # calibration runs the optimizer
    "reports": BASE | {"core", "model"} | PATHS,
    "studies": BASE | {"core", "model", "reports"} | PATHS,
    "cli": BASE | {"core", "model"} | PATHS,
    "web": BASE | {"core", "model", "reports", "studies"} | PATHS,
    "apps": BASE | {"core", "model", "reports", "studies", "cli", "web"} | PATHS,
    "__init__": {"errors"},
}


def unit(module: str) -> str:
    """`fast_nst.core.vgg` -> `core`; `fast_nst` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_unit(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()


def imports(path: Path) -> set[str]:
    """The fast_nst modules `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "fast_nst":  # from fast_nst import device (or FastNSTError)
                names = [f"fast_nst.{a.name}" if is_unit(a.name) else "fast_nst"
                         for a in node.names]
            found.update(n for n in names if n.split(".")[0] == "fast_nst")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "fast_nst")
    return found


def units_and_files() -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        files.setdefault(parts[0] if len(parts) > 1 or parts[0] != "__init__" else "__init__",
                         []).append(path)
    return files


def test_every_unit_has_a_place_in_the_table() -> None:
    assert set(units_and_files()) == set(ALLOWED)


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_imports_point_down(name: str) -> None:
    wrong = [f"{path.relative_to(PACKAGE.parent)} imports {module}"
             for path in units_and_files().get(name, [])
             for module in sorted(imports(path))
             if unit(module) != name and unit(module) not in ALLOWED[name]
             and not (module == "fast_nst" and "errors" in ALLOWED[name])]  # its FastNSTError
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from fast_nst.training.module import X\n"
                   "from fast_nst import FastNSTError, device\n")
    assert imports(bad) == {"fast_nst.training.module", "fast_nst.device", "fast_nst"}
    assert unit("fast_nst.training.module") not in ALLOWED["inference"]
