"""benchmarks/bench_train.py: the step timer and the numbers it reports."""

from __future__ import annotations

import csv
from types import ModuleType, SimpleNamespace

import pytest
import torch

from tests.app_helpers import load_script


def load_bench_train() -> ModuleType:
    return load_script("benchmarks/bench_train")


def test_bench_train_step_timer_times_only_the_steps_after_the_warmup(monkeypatch) -> None:
    bench = load_bench_train()
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    timer = bench.StepTimer(warmup=2)
    for step, seconds in enumerate([0.5, 0.25, 1.0, 0.5, 0.75], start=1):
        trainer = SimpleNamespace(global_step=step)  # Lightning's, after each optimizer step
        clock.now = 10.0 * step
        timer.on_train_batch_start(trainer, None, None, step - 1)
        clock.now += seconds
        timer.on_train_batch_end(trainer, None, {"loss": torch.tensor(step / 2)}, None, step - 1)
    assert timer.times == [1.0, 0.5, 0.75]  # steps 3..5, batch start to end
    assert timer.losses == [0.5, 1.0, 1.5, 2.0, 2.5]  # every step's loss


def test_bench_train_reports_the_median_of_its_rounds(tmp_path, monkeypatch, capsys) -> None:
    """The numbers bench_train prints and writes, from given step times (the training replaced):
    configurations take turns, s/step is the median over all rounds, the speed-up is against
    the first precision of the same width, images/s = batch / s/step; the loss curves are the
    steps' losses as measured, and the summary's ratios are bf16 over fp32."""
    bench = load_bench_train()
    step_times = {("full", "32-true"): [[0.40, 0.44], [0.42, 0.60]],  # median 0.43
                  ("full", "bf16-mixed"): [[0.20, 0.30], [0.21, 0.22]],  # 0.215
                  ("half", "32-true"): [[0.10, 0.12], [0.11, 0.50]],  # 0.115
                  ("half", "bf16-mixed"): [[0.05, 0.06], [0.07, 0.04]]}  # 0.055
    curves = {"32-true": [4.0, 3.0, 2.0, 1.0], "bf16-mixed": [4.0, 3.2, 2.2, 1.1]}
    calls = []

    def fake_train(images, *, width, precision, steps, warmup, **common):
        calls.append((width, precision, steps, warmup))
        timer = bench.StepTimer(warmup)
        if warmup:  # a timed configuration: this round's step times
            timer.times = step_times[width, precision].pop(0)
        else:  # a loss curve
            timer.losses, timer.module = curves[precision], precision
        return timer

    monkeypatch.setattr(bench, "train", fake_train)
    monkeypatch.setattr(bench, "float32_loss",
                        lambda module, batch: {"32-true": 0.5, "bf16-mixed": 0.6}[module])
    args = SimpleNamespace(widths="full,half", precisions="32-true,bf16-mixed", rounds=2,
                           steps=2, warmup=1, size=32, batch=4, allocator="keep", out=tmp_path,
                           curve_widths="half", curve_steps=4)
    rows = bench.time_configurations(torch.zeros(1), args, {"batch": 4})
    configs = [(w, p, 2, 1) for w in ("full", "half") for p in ("32-true", "bf16-mixed")]
    assert calls == configs * 2  # round 1, then round 2
    expected = [("full", "32-true", 0.43, 1.0), ("full", "bf16-mixed", 0.215, 2.0),
                ("half", "32-true", 0.115, 1.0), ("half", "bf16-mixed", 0.055, 0.115 / 0.055)]
    assert [r[:2] for r in rows] == [e[:2] for e in expected]
    assert [r[2:] for r in rows] == [pytest.approx(e[2:]) for e in expected]

    bench.print_table(rows, args)
    assert "| half | bf16-mixed | 0.055 | 72.73 | 2.09x |" in capsys.readouterr().out
    with open(tmp_path / "throughput.csv") as f:
        saved = [{k: v if k in ("width", "precision") else float(v) for k, v in r.items()}
                 for r in csv.DictReader(f)]
    assert saved == [{"width": w, "precision": p, "s_per_step": pytest.approx(t, rel=1e-5),
                      "images_per_s": pytest.approx(4 / t, rel=1e-5),
                      "speedup": pytest.approx(x, rel=1e-5)} for w, p, t, x in expected]

    calls.clear()
    bench.loss_curves(torch.zeros(1), torch.zeros(8), args, {"batch": 4})
    assert calls == [("half", "32-true", 4, 0), ("half", "bf16-mixed", 4, 0)]
    assert (tmp_path / "loss_curve_half.csv").read_text().splitlines() == [
        "step,32-true,bf16-mixed", "1,4,4", "2,3,3.2", "3,2,2.2", "4,1,1.1"]
    assert (tmp_path / "loss_curve_half.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "(half width; mean of the last 1): 32-true 1, bf16-mixed 1.1; bf16/fp32 = 1.100" in out
    assert "on 8 other crops: 32-true 0.5, bf16-mixed 0.6; bf16/fp32 = 1.200" in out
