"""Serve the stylizing web page (docs/web.md):

    fast-nst-serve                       # http://127.0.0.1:7860 (`make serve` sets up first)
    fast-nst-serve --port 8000 --models path/to/folder/of/pt

Thin argparse entry point; the page is `fast_nst.web.app`, its work `fast_nst.web.jobs`.
"""

from __future__ import annotations

import atexit
import shutil

from fast_nst.errors import ArgumentParser, exit_on_user_error
from fast_nst.model.files import BUNDLED_MODELS, bundled_models, fast_models
from fast_nst.web.jobs import Limits


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Serve the stylizing web page (docs/web.md).")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this "
                   "computer only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--models", default=str(BUNDLED_MODELS),
                   help="folder of .pt styles shown as thumbnails, with their fast/ variants "
                   "(default: the bundled models/)")
    p.add_argument("--max-frames", type=int, default=Limits.max_frames,
                   help="longest clip accepted, in frames (default %(default)s)")
    p.add_argument("--max-megapixels", type=float, default=Limits.max_megapixels,
                   help="largest photo result (default %(default)s)")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from fast_nst.web.app import App, check_port, launch  # Gradio: seconds, so not for --help

    check_port(args.host, args.port)
    # each style's fast variant (models/fast/) is a style of its own: "udnie (fast)"
    app = App({**bundled_models(args.models), **fast_models(args.models)},
              Limits(max_frames=args.max_frames, max_megapixels=args.max_megapixels))
    atexit.register(shutil.rmtree, app.folder, ignore_errors=True)
    launch(app, args.host, args.port)


if __name__ == "__main__":
    main()
