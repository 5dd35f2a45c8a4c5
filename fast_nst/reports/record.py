"""What a run leaves on disk: the output image, losses.csv, snapshots/ and tensorboard/ (the
app's per-step side effects), and the one-line summary it prints."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from fast_nst.core.images import output_format, save_image
from fast_nst.optimizer.config import GatysConfig, validate
from fast_nst.optimizer.loop import GatysResult, run
from fast_nst.reports.tables import write_csv


class Recorder:
    """Per-step side effects of the app: TensorBoard scalars, snapshots every N steps, CSV.

    Nothing is created before the first step, so a run that stops on a bad input leaves no
    empty losses.csv or TensorBoard file behind."""

    def __init__(self, folder: Path, snapshot_every: int = 0, tensorboard: bool = True) -> None:
        self.folder = folder
        self.snapshot_every = snapshot_every
        self.tensorboard = tensorboard
        self.rows: list[dict[str, float]] = []
        self.writer = None

    def _open(self) -> None:
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.folder / "tensorboard"))
        if self.snapshot_every:
            (self.folder / "snapshots").mkdir(parents=True, exist_ok=True)

    def __call__(self, row: dict[str, float], image: Tensor) -> None:
        if not self.rows:
            self._open()
        self.rows.append(row)
        step = int(row["step"])
        if self.writer is not None:
            for key in ("content", "style", "tv", "total", "extra"):
                if key in row:
                    self.writer.add_scalar(f"loss/{key}", row[key], step)
        if self.snapshot_every and step % self.snapshot_every == 0:
            snap = image.detach().clamp(0, 1)
            save_image(snap, self.folder / "snapshots" / f"step_{step:06d}.png")
            if self.writer is not None:
                self.writer.add_image("snapshot", snap[0].cpu(), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.rows:
            write_csv(self.rows, self.folder / "losses.csv")


def run_to_folder(cfg: GatysConfig, folder: Path, *, output: str = "output.png",
                  snapshot_every: int = 0, tensorboard: bool = True) -> GatysResult:
    """`run` plus the files: output image, losses.csv, snapshots/, tensorboard/ in `folder`."""
    validate(cfg)
    output_format(folder / output)  # a typo in the extension: refused before the steps run
    folder.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(folder, snapshot_every, tensorboard)
    try:
        result = run(cfg, on_step=recorder)
    finally:
        recorder.close()
    save_image(result.image, folder / output)
    return result


def summary(result: GatysResult) -> str:
    """One line: steps, evaluations, time, final losses."""
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.final.items())
    per_step = result.seconds / max(1, result.steps)
    return (f"{result.steps} steps ({result.evaluations} VGG evaluations) in "
            f"{result.seconds:.1f} s ({per_step:.3f} s/step); final {losses}")
