"""The web page (fast_nst.web.app), driven in a real headless Chromium through Playwright.

The browser test is skipped with the reason when Chromium or Playwright is absent (.ci/run
installs Chromium). FAST_NST_WEB_SCREENSHOT=path also saves a screenshot of the page with a
result there (docs/images/web.png is made this way).
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fast_nst.core.video import stylize_video
from fast_nst.web import jobs as web_jobs
from fast_nst.web.jobs import (
    Limits,
)
from tests.core.test_video import make_clip
from tests.web.helpers import JUNK_MODEL, MODELS, STYLE, cat_photo, pixels

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium absent ({CHROMIUM}); apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright absent; pip install -e '.[web]'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gradio", reason="gradio absent; pip install -e '.[web]'")
    from fast_nst.web.app import App, launch

    app = App(MODELS, Limits(max_frames=20), tmp_path_factory.mktemp("web"))
    port = _free_port()
    page = launch(app, "127.0.0.1", port, block=False)
    yield app, f"http://127.0.0.1:{port}"
    page.close()


def test_a_port_out_of_range_is_a_one_line_error() -> None:
    pytest.importorskip("gradio", reason="gradio absent; pip install -e '.[web]'")
    from fast_nst.errors import FastNSTError
    from fast_nst.web.app import check_port

    with pytest.raises(FastNSTError, match="--port must be 0 to 65535, got 70000"):
        check_port("127.0.0.1", 70000)


def _toast(page, text: str) -> None:
    page.locator(".toast-body", has_text=text).first.wait_for(timeout=20_000)


def _upload_file(page, element: str, path: Path) -> None:
    """Upload into a gr.File and wait until its table lists the file. The name is shown as
    two spans (stem, extension), so the wait is on the cell's aria-label, not on the text."""
    page.locator(f"{element} input[type=file]").set_input_files(str(path))
    page.locator(f"{element} [aria-label='{path.name}']").wait_for(timeout=60_000)


def _stylize(page, expected_status: str | re.Pattern) -> None:
    page.locator("#run-photo").click()
    page.locator("#status", has_text=expected_status).wait_for(timeout=30_000)


def _download(page, folder: Path) -> Path:
    with page.expect_download(timeout=20_000) as info:
        page.locator("#download").click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def _screenshot(page, path: Path) -> None:
    """The whole page as a 256-colour PNG (small enough to commit)."""
    page.wait_for_timeout(500)  # let the images finish fading in
    page.screenshot(path=path, full_page=True)
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


def test_the_page_stylizes_downloads_and_reports_mistakes(browser, server, tmp_path, capfd,
                                                           monkeypatch) -> None:
    app, url = server
    photo = cat_photo(tmp_path / "cat.jpg", (192, 128))
    page = browser.new_page(viewport={"width": 1280, "height": 940}, accept_downloads=True,
                            permissions=["camera"])
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    loads = app.cache.loads
    assert loads == len(MODELS)  # thumbnails loaded every bundled style once

    page.locator("#photo-in input[type=file]").set_input_files(str(photo))
    page.locator("#styles button[aria-label^='Thumbnail']").nth(list(MODELS).index(STYLE)).click()
    page.wait_for_function(f"document.querySelector('#style input').value === '{STYLE}'")
    _stylize(page, f"{STYLE} at strength 1: 192x128 px")
    page.locator("#photo-out img").wait_for()
    first = _download(page, tmp_path / "first")
    assert first.name == "cat_udnie.jpg" and Image.open(first).size == (192, 128)
    assert np.abs(pixels(first) - pixels(photo)).mean() > 10
    page.locator("#run-sheet").click()
    page.locator("#sheet-out img").wait_for(timeout=30_000)
    if os.environ.get("FAST_NST_WEB_SCREENSHOT"):
        _screenshot(page, Path(os.environ["FAST_NST_WEB_SCREENSHOT"]))

    page.locator("#strength input[type=number]").fill("0.5")
    page.locator("#strength input[type=number]").press("Enter")
    _stylize(page, f"{STYLE} at strength 0.5: 192x128 px")
    second = _download(page, tmp_path / "second")
    half = np.abs(pixels(second) - pixels(photo)).mean()
    assert 3 < half < np.abs(pixels(first) - pixels(photo)).mean()  # strength reached the job
    assert app.cache.loads == loads  # the second request reused the loaded model

    # a clip (held at its start until released) does not keep a photo from being served
    gate = threading.Event()

    def held_video(*args, **kwargs):
        gate.wait(60)
        return stylize_video(*args, **kwargs)

    monkeypatch.setattr(web_jobs, "stylize_video", held_video)
    page.get_by_role("tab", name="Clip").click()
    page.locator("#clip-in input[type=file]").set_input_files(str(make_clip(tmp_path / "c.mp4")))
    page.locator("#run-clip").click()
    page.get_by_role("tab", name="Photo").click()
    page.locator("#strength input[type=number]").fill("0.75")
    page.locator("#strength input[type=number]").press("Enter")
    _stylize(page, f"{STYLE} at strength 0.75: 192x128 px")
    assert not gate.is_set() and not list(app.folder.rglob("c_udnie.mp4"))
    gate.set()
    page.get_by_role("tab", name="Clip").click()
    page.locator("#clip-out video").wait_for(state="attached", timeout=30_000)
    assert len(list(app.folder.rglob("c_udnie.mp4"))) == 1
    page.get_by_role("tab", name="Photo").click()

    broken = tmp_path / "broken.jpg"
    broken.write_text("this is text, not a photo")
    page.locator("#photo-in input[type=file]").set_input_files(str(broken))
    page.locator("#run-photo").click()
    _toast(page, "broken.jpg is not an image PIL can read")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    page.locator("#photo-in input[type=file]").set_input_files(str(notes))
    _toast(page, "Invalid file type: notes.txt")

    page.locator("#strength input[type=number]").fill("0.6")  # Chromium's fake camera
    page.locator("#strength input[type=number]").press("Enter")
    page.locator("#photo-in button[aria-label='Capture from camera']").click()
    page.get_by_text("Click to Access Webcam").click()
    page.wait_for_function("document.querySelector('#photo-in video')?.readyState >= 2")
    page.locator("#photo-in button[aria-label='capture photo']").click()
    page.locator("#photo-in img").wait_for()
    page.locator("#size input").click()
    page.get_by_role("option", name="256 px").click()
    _stylize(page, re.compile(rf"{STYLE} at strength 0.6: (256x\d+|\d+x256) px"))

    page.get_by_role("tab", name="Clip").click()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model, just text\n" * 50)
    _upload_file(page, "#own-model", junk)
    page.locator("#run-clip").click()
    page.locator(".toast-body").filter(has_text=re.compile(JUNK_MODEL)).first.wait_for()

    hosts = {u.split("/")[2] for u in requests if u.startswith(("http:", "https:", "ws"))}
    assert hosts == {url.split("/")[2]}  # nothing fetched from anywhere else
    assert "Traceback" not in "".join(capfd.readouterr())
    page.close()
