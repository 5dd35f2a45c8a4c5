"""A local web page for stylizing: drop a photo or a short clip, pick a style, see the result
beside the input and download it at full resolution.

    fast-nst-serve                       # http://127.0.0.1:7860 (`make serve` sets up first)
    fast-nst-serve --port 8000 --models path/to/folder/of/pt

The page is laid out here (Gradio); the work is in `fast_nst.web.jobs`, the command line in
`fast_nst.apps.serve`. Analytics are off and the theme uses system fonts, so the page fetches
nothing from the internet.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from fast_nst.errors import FastNSTError, find_user_error
from fast_nst.web.jobs import (
    SIZES,
    Limits,
    ModelCache,
    request_options,
    style_sheet,
    stylize_clip,
    stylize_photo,
    thumbnails,
)

NO_PHOTO = "upload a photo or take one with the webcam first"
THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"],
                   font_mono=["ui-monospace", "monospace"])  # no Google Fonts


def upload(payload: Any) -> tuple[Path, str] | None:
    """(file on disk, name the user gave it) from a raw Gradio file value (events run with
    preprocess=False, so a file that is not an image reaches our one-line error, not PIL's)."""
    if isinstance(payload, dict) and "video" in payload:
        payload = payload["video"]
    if not payload:
        return None
    if isinstance(payload, (str, Path)):
        return Path(payload), Path(payload).name
    path = payload.get("path")
    if not path:
        raise FastNSTError("the upload did not arrive; please try again")
    return Path(path), payload.get("orig_name") or Path(path).name


class App:
    """The page's state between requests: styles, the model cache, limits, a result folder."""

    def __init__(self, models: dict[str, Path], limits: Limits | None = None,
                 folder: Path | None = None) -> None:
        self.models, self.limits, self.cache = models, limits or Limits(), ModelCache()
        self.folder = folder or Path(tempfile.mkdtemp(prefix="fast_nst_web_"))
        self.thumbs = thumbnails(self.cache, models, self.folder / "thumbnails")

    @contextmanager
    def user_errors(self, names: dict[Path, str]) -> Iterator[None]:
        """FastNSTError -> a message on the page, with upload paths shown as the user's names;
        no traceback on the server for a user's mistake. Other errors go to Gradio as usual."""
        try:
            yield
        except Exception as err:
            user = find_user_error(err)
            if user is None:
                raise
            message = str(user)
            for path, name in names.items():
                message = message.replace(str(path), name)
            raise gr.Error(message, print_exception=False) from None

    @staticmethod
    def uploads(media: Any, own: Any, names: dict[Path, str], missing: str
                ) -> tuple[Path, tuple[Path, str] | None]:
        """The photo or clip and the optional own model; records their names for messages."""
        src, own_model = upload(media), upload(own)
        names.update(dict(x for x in (src, own_model) if x))
        if src is None:
            raise FastNSTError(missing)
        return src[0], own_model

    def model_path(self, style: str, own: tuple[Path, str] | None) -> tuple[Path, str]:
        if own is not None:
            return own
        if style not in self.models:
            raise FastNSTError(f"pick a style (one of {', '.join(self.models)}) or upload a model")
        return self.models[style], style

    def photo(self, photo: Any, style: str, own: Any, strength: float, preserve: bool,
              size: str, progress: gr.Progress = gr.Progress(track_tqdm=True)):  # noqa: B008
        """Stylize button: the result image, the download button, a status line."""
        names: dict[Path, str] = {}
        with self.user_errors(names):
            src, own_model = self.uploads(photo, own, names, NO_PHOTO)
            model, label = self.model_path(style, own_model)
            progress(0, desc="stylizing")
            start = time.perf_counter()
            options = request_options(size, strength, preserve)
            out = stylize_photo(self.cache, model, src, options, self.folder / "results",
                                self.limits, progress=True)
            seconds = time.perf_counter() - start
        with Image.open(out) as image:
            w, h = image.size
        status = f"**{label}** at strength {strength:g}: {w}x{h} px in {seconds:.1f} s"
        return str(out), gr.DownloadButton(value=str(out), interactive=True), status

    def sheet(self, photo: Any, own: Any, strength: float, preserve: bool, size: str):
        """Several styles at once: every bundled style (and an uploaded model) in one sheet."""
        names: dict[Path, str] = {}
        with self.user_errors(names):
            src, own_model = self.uploads(photo, own, names, NO_PHOTO)
            models = dict(self.models)
            if own_model is not None:
                models[Path(own_model[1]).stem] = own_model[0]
            out = style_sheet(self.cache, models, src, request_options(size, strength, preserve),
                              self.folder / "results", self.limits)
        return str(out)

    def clip(self, clip: Any, style: str, own: Any, strength: float, preserve: bool, size: str,
             progress: gr.Progress = gr.Progress()):  # noqa: B008 (Gradio's idiom)
        """Stylize-clip button: the stylized .mp4 (audio kept) and its download."""
        names: dict[Path, str] = {}
        with self.user_errors(names):
            src, own_model = self.uploads(clip, own, names, "upload a video clip first")
            model, _ = self.model_path(style, own_model)
            out = stylize_clip(self.cache, model, src, request_options(size, strength, preserve),
                               self.folder / "results", self.limits,
                               on_frame=lambda i, n: progress((i, n), desc="frames", unit="frames"))
        return str(out), gr.DownloadButton(value=str(out), interactive=True)


def build_page(app: App) -> gr.Blocks:
    """The layout and its wiring; every event calls one App method."""
    styles = list(app.models)
    with gr.Blocks(title="fast_nst", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("## fast_nst: stylize a photo or a short clip")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                gallery = gr.Gallery(app.thumbs, label="Styles (click one)", columns=2,
                                     allow_preview=False, buttons=[], height=330,
                                     elem_id="styles")
                style = gr.Dropdown(styles, value=styles[0], label="Style", elem_id="style")
                own = gr.File(label="...or your own model (.pt, .ckpt, .pth); used when given",
                              file_types=[".pt", ".ckpt", ".pth"], elem_id="own-model")
                strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength (0 = the input)",
                                     elem_id="strength")
                preserve = gr.Checkbox(label="Keep the input's colours")
                size = gr.Dropdown(list(SIZES), value="original", label="Output size (long side)",
                                   elem_id="size")
            with gr.Column(scale=3):
                with gr.Tab("Photo"):
                    with gr.Row():
                        photo = gr.Image(label="Photo", sources=["upload", "webcam", "clipboard"],
                                         type="filepath", image_mode=None, elem_id="photo-in")
                        result = gr.Image(label="Result", type="filepath", interactive=False,
                                          buttons=["download", "fullscreen"], elem_id="photo-out")
                    with gr.Row():
                        run = gr.Button("Stylize", variant="primary", elem_id="run-photo")
                        download = gr.DownloadButton("Download full resolution",
                                                     interactive=False, elem_id="download")
                        compare = gr.Button("All styles at once", elem_id="run-sheet")
                    status = gr.Markdown(elem_id="status")
                    styles_sheet = gr.Image(label="All styles", show_label=False,
                                            type="filepath", interactive=False,
                                            buttons=["download", "fullscreen"],
                                            elem_id="sheet-out")
                with gr.Tab("Clip"):
                    lim = app.limits
                    gr.Markdown(f"Short clips only: at most **{lim.max_frames} frames** (about "
                                f"{lim.max_frames / 30:.0f} s at 30 fps); audio is kept. On a "
                                "CPU expect about a second per 512 px frame: pick a small output "
                                "size. Longer videos: `stylize.py`.")
                    with gr.Row():
                        clip = gr.Video(label="Clip", sources=["upload"], elem_id="clip-in")
                        clip_out = gr.Video(label="Result", interactive=False, elem_id="clip-out")
                    with gr.Row():
                        run_clip = gr.Button("Stylize clip", variant="primary", elem_id="run-clip")
                        clip_download = gr.DownloadButton("Download", interactive=False)
        gr.Markdown(f"Photos up to {lim.max_megapixels:g} megapixels out (large ones are "
                    "processed in tiles, as `stylize.py` does); uploads up to "
                    f"{lim.upload_mb} MB. Everything runs on this computer.")

        def pick(event: gr.SelectData) -> str:
            return styles[event.index]

        gallery.select(pick, None, style)
        controls = [style, own, strength, preserve, size]
        run.click(app.photo, [photo, *controls], [result, download, status], preprocess=False,
                  concurrency_id="photo", concurrency_limit=2)
        compare.click(app.sheet, [photo, own, strength, preserve, size], styles_sheet,
                      preprocess=False, concurrency_id="photo")
        run_clip.click(app.clip, [clip, *controls], [clip_out, clip_download], preprocess=False,
                       concurrency_id="clip", concurrency_limit=1)
    return page


def launch(app: App, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True
           ) -> gr.Blocks:
    """Serve the page; `block=False` returns at once (tests, notebooks)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    page = build_page(app).queue(default_concurrency_limit=2)
    try:
        page.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                    theme=gr.themes.Default(**THEME_FONTS), allowed_paths=[str(app.folder)],
                    max_file_size=f"{app.limits.upload_mb}mb", show_error=True, quiet=False,
                    footer_links=["gradio"], run_history=False)
    except OSError as err:
        raise FastNSTError(f"cannot serve on {host}:{port} ({err}); try another --port") from None
    return page


def check_port(host: str, port: int) -> None:
    """Fail in a second, not after the models are loaded, when the port is taken."""
    if not 0 <= port <= 65535:
        raise FastNSTError(f"--port must be 0 to 65535, got {port}")
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise FastNSTError(f"cannot serve on {host}:{port} ({err.strerror}); "
                               "try another --port") from None
