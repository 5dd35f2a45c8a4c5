"""The report of a style-weight calibration (`fast_nst.training.calibration.Calibration`):
calibration.png (photos down the side, one column per style weight), calibration.csv (every
cell) and calibration.md (the suggestion, the command, the means per weight, every cell)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from fast_nst.reports.sheet import grid, save
from fast_nst.reports.tables import markdown_table, write_csv, write_text
from fast_nst.training.calibration import Calibration


def make_sheet(result: Calibration) -> Image.Image:
    """Rows: photos; columns: the photo, one per weight; the style image beside the first row."""
    images: list[list[Any]] = []
    for i, ref in enumerate(result.references):
        cells = [c.image for c in result.cells if c.photo == ref.photo]
        images.append([ref.image, *cells, result.style_image if i == 0 else None])
    labels = ["photo", *[f"w={w:.3g}\nprogress {p:.2f}\ncontent {c:.2f}" for w, p, c in
                         zip(result.weights, result.mean_progress(),
                             result.mean_content_ratio(), strict=True)], "style"]
    title = (f"{result.style_name}: {result.settings.steps} L-BFGS steps from each photo "
             f"({result.image_size} px) per style weight w. Means over the photos: progress = "
             "the style loss's way from the photo's (0) to the painting's own (1), log scale;\n"
             "content = content loss / the painting's (1: as if the painting replaced the photo)")
    return grid(images, [r.photo for r in result.references], labels,
                cell=result.settings.grid_cell or result.image_size, title=title, font_size=14)


def markdown(result: Calibration) -> str:
    """calibration.md: the suggestion and command, the means per weight, every cell."""
    s, loss = result.suggestion, result.meta["loss"]
    means = [{"style_weight": w, "style progress (mean)": p, "content ratio (mean)": c}
             for w, p, c in zip(result.weights, result.mean_progress(),
                                result.mean_content_ratio(), strict=True)]
    cells = [{k: v for k, v in r.items() if k not in ("photo_style", "painting_style",
                                                      "painting_content")}
             for r in result.rows()]
    refs = [{"photo": r.photo, "photo style loss": r.photo_style,
             "painting style loss (its own crops)": result.painting_style,
             "painting content loss": r.painting_content} for r in result.references]
    rule = result.settings.rule
    return "\n".join([
        f"# Style weight calibration: {result.style_name}", "",
        f"Suggested: `loss.style_weight={s.weight:g}`: {s.reason} (rule: style progress "
        f">= {rule.style_progress:g}, content ratio < {rule.max_content:g}).", "",
        "```bash", result.command, "```", "",
        "![calibration grid](calibration.png)", "",
        f"{result.settings.steps} L-BFGS steps from each photo (best image kept), "
        f"{result.image_size} px centre crops; style image {result.meta['style_image']} at "
        f"long side {result.meta['style_size']}; content {loss['content_layers']} x "
        f"{loss['content_weight']:g}, style {loss['style_layers']}, tv {loss['tv_weight']:g}; "
        f"VGG {result.meta['vgg']['weights']} ({result.meta['vgg']['convention']}); "
        f"{len(result.cells)} transfers in {result.seconds:.0f} s.", "",
        "## Per style weight (mean over the photos)", "", markdown_table(means),
        "## Every cell", "",
        "content: content loss as training weighs it; style: Gram loss per unit style weight; "
        "style_weighted: as training logs it (`train/style`).", "", markdown_table(cells),
        "## References", "", markdown_table(refs)])


def write_report(result: Calibration, folder: Path) -> None:
    """calibration.png, calibration.csv and calibration.md in `folder` (each written atomically)."""
    result.sheet = make_sheet(result)
    result.report = markdown(result)
    save(result.sheet, folder / "calibration.png")
    write_csv(result.rows(), folder / "calibration.csv")
    write_text(result.report, folder / "calibration.md")
