"""The demo: scikit-image's sample photos stylized by every bundled style, plus one contact
sheet (photos down the side, the styles across).

    fast-nst-demo --output demo        # what `make demo` runs

Thin argparse entry point; the work is in `fast_nst.studies.demo`.
"""

from __future__ import annotations

from pathlib import Path

from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error
from fast_nst.model.files import BUNDLED_MODELS, bundled_models
from fast_nst.studies.demo import CELL, PHOTO_SIZE, PHOTOS, run_demo, sample_photos


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", "-o", default="demo", help="folder for the results (default demo)")
    p.add_argument("--models", default=str(BUNDLED_MODELS),
                   help="folder of .pt models (default: the bundled models/)")
    p.add_argument("--size", type=int, default=PHOTO_SIZE,
                   help="long side of the photos in px (default %(default)s)")
    p.add_argument("--cell", type=int, default=CELL,
                   help="contact sheet cell size in px (default %(default)s)")
    p.add_argument("--no-progress", action="store_true")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.size < 16:
        raise FastNSTError(f"--size must be at least 16 px, got {args.size}")
    models = bundled_models(Path(args.models))
    path = run_demo(Path(args.output), models, sample_photos(size=args.size), args.cell,
                    progress=not args.no_progress)
    print(f"wrote {len(models)} styles x {len(PHOTOS)} photos to {args.output}/ and {path}")


if __name__ == "__main__":
    main()
