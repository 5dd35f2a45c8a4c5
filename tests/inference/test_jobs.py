"""fast_nst.inference.jobs: inputs and outputs are checked before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from fast_nst import FastNSTError
from fast_nst.inference.jobs import plan_jobs
from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from tests.stylize_helpers import QUIET, write_photo


def test_inputs_are_never_overwritten_unless_asked(tmp_path, model_pt) -> None:
    src = write_photo(tmp_path / "a.png", 16, 16)
    before = src.read_bytes()
    with pytest.raises(FastNSTError, match="is an input"):
        stylize_paths(model_pt, [src], src, StylizeOptions(**QUIET))
    with pytest.raises(FastNSTError, match="is an input"):
        stylize_paths(model_pt, [tmp_path], tmp_path, StylizeOptions(**QUIET, pattern="{name}"))
    assert src.read_bytes() == before
    stylize_paths(model_pt, [src], src, StylizeOptions(**QUIET, overwrite=True))
    assert src.read_bytes() != before


def test_name_clash_is_an_error(tmp_path, model_pt) -> None:
    write_photo(tmp_path / "in" / "a.png", 8, 8)
    write_photo(tmp_path / "in" / "a.jpg", 8, 8)
    with pytest.raises(FastNSTError, match="would both be written"):
        plan_jobs([tmp_path / "in"], tmp_path / "out", style="s", pattern="{stem}.png")


def _no_files(folder: Path) -> bool:
    return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


REASONS = {"unreadable": r"in/broken.jpg is not an image PIL can read",
           "unsupported": r"unsupported input .*in/notes.txt: give images",
           "unwritable": r"cannot create output folder .*file/sub \(Not a directory\)",
           "not_a_folder": r"cannot create output folder .*in/ok.png \(File exists\)"}


@pytest.mark.parametrize("case", ["unreadable", "unsupported", "unwritable", "not_a_folder"])
def test_bad_inputs_are_one_line_errors_without_partial_files(tmp_path, model_pt, case) -> None:
    out = tmp_path / "out"
    inputs = [write_photo(tmp_path / "in" / "ok.png", 12, 12)]
    if case == "unreadable":
        (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        inputs = [tmp_path / "in"]
    elif case == "unsupported":
        inputs.append(tmp_path / "in" / "notes.txt")
        inputs[-1].write_text("x")
    elif case == "unwritable":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub"
    else:
        out = tmp_path / "in" / "ok.png" / "x.png"
    with pytest.raises(FastNSTError, match=REASONS[case]) as err:
        stylize_paths(model_pt, inputs, out, StylizeOptions(**QUIET))
    assert "\n" not in str(err.value)
    assert _no_files(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "in").iterdir() if p.name != "notes.txt"
                  and p.name != "broken.jpg") == ["ok.png"]
