"""fast_nst.errors: Ctrl-C is one line, exit status 130, and finished outputs are kept."""

from __future__ import annotations

import pytest

import stylize as stylize_app
from fast_nst.inference.pipeline import Pipeline
from tests.app_helpers import MODEL, write_photo


def test_ctrl_c_keeps_finished_outputs_in_one_line(tmp_path, monkeypatch, capfd) -> None:
    inputs = [write_photo(tmp_path / f"{name}.png", 24, 16, seed) for seed, name in
              enumerate("abc")]
    calls = []
    real = Pipeline.pixels

    def interrupt_second(self, pixels, progress=False):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, pixels, progress)

    monkeypatch.setattr(Pipeline, "pixels", interrupt_second)
    out = tmp_path / "styled"
    with pytest.raises(SystemExit) as exit_info:
        stylize_app.main(["--model", str(MODEL), *map(str, inputs), "-o", str(out),
                          "--batch-size", "1", "--no-progress"])
    _, err = capfd.readouterr()
    assert exit_info.value.code == 130
    assert err.strip().splitlines() == ["interrupted: stopped by Ctrl-C; finished outputs "
                                        "are kept"]
    left = [p.name for p in out.iterdir()]  # the one image finished; no temporaries
    assert len(left) == 1 and left[0] in {f"{n}_udnie.png" for n in "abc"}, left
