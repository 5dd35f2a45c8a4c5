"""The architecture study (docs/studies/architecture.md): speed of every network variant, and
the quality of trained students against their teacher.

    python benchmarks/study_architectures.py                    # speed table, 512 px
    python benchmarks/study_architectures.py --teacher models/udnie.pt \\
        --student fast=models/fast/udnie.pt --quality-size 512  # + quality table

Speed: fp32 eager forward pass, random weights (speed does not depend on them), median of
`--rounds` rounds; bf16 too on a CPU with native bf16. Quality: mean content and style loss over
the six ../shared/data/content photos, scored with the teacher's training loss, and the ratios
to the teacher's. The logic is in `fast_nst.studies.architecture`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_nst.device import describe_hardware  # noqa: E402
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.model.files import load_model  # noqa: E402
from fast_nst.reports.tables import markdown_table, write_csv  # noqa: E402
from fast_nst.studies.architecture import (  # noqa: E402
    VARIANTS,
    content_photos,
    quality_rows,
    speed_rows,
)

SHARED = ROOT.parent / "shared"
CAFFE = {"weights": str(SHARED / "weights" / "vgg19-caffe-rgb255-features.pth"),
         "convention": "caffe", "pooling": "max"}


def students(pairs: list[str]) -> dict[str, str]:
    """NAME=PATH arguments as {name: path}; a one-line error for anything else."""
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise FastNSTError(f"--student takes NAME=MODEL_FILE, got {pair!r}")
        out[name] = path
    return out


@exit_on_user_error
def main() -> None:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=512, help="side of the timed image (px)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds over all variants")
    p.add_argument("--teacher", help="model file the students were distilled from")
    p.add_argument("--student", action="append", default=[], metavar="NAME=FILE")
    p.add_argument("--quality-size", type=int, default=512, help="photos' long side (px)")
    p.add_argument("--output", default="outputs/study_architectures", help="CSV folder")
    p.add_argument("--skip-speed", action="store_true", help="only the quality table")
    args = p.parse_args()
    if args.size < 16 or args.rounds < 1:
        raise FastNSTError("--size must be at least 16 and --rounds at least 1")
    named = students(args.student)
    if named and not args.teacher:
        raise FastNSTError("--student needs --teacher (the model it was distilled from)")
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    print(describe_hardware() + "\n")
    if not args.skip_speed:
        rows = speed_rows(VARIANTS, args.size, args.rounds)
        write_csv(rows, folder / "speed.csv")
        print(f"forward pass at {args.size} px:\n\n{markdown_table(rows)}\n")
    if args.teacher:
        rows = quality_rows(load_model(args.teacher),
                            {k: load_model(v) for k, v in named.items()},
                            content_photos(SHARED), args.quality_size, CAFFE, str(SHARED))
        write_csv(rows, folder / "quality.csv")
        print(f"quality at {args.quality_size} px:\n\n{markdown_table(rows)}")


if __name__ == "__main__":
    main()
