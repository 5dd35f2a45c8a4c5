from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.video import is_video, probe, read_frames, stylize_video
from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from fast_nst.model.files import export_model
from fast_nst.model.network import NetConfig, TransformerNet

FRAMES, SIZE, RATE = 8, 32, 12


def make_clip(path: Path, *, frames: int = FRAMES, audio: bool = True, rate: int = RATE,
              codec: str = "libx264") -> Path:
    """A tiny clip: a bar sweeping right, and a 440 Hz AAC tone when `audio`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=44100, layout="stereo") if audio else None
        samples = 0
        if frames == 0:
            out.start_encoding()  # header only: a valid file with a video stream and no frames
        for i in range(frames):
            img = np.full((SIZE, SIZE, 3), 40, np.uint8)
            img[:, : 4 * (i + 1)] = (250, 120, 30)
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            while sound is not None and samples < (i + 1) * 44100 // rate:
                t = (samples + np.arange(1024)) / 44100
                tone = np.stack([np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32) * 0.3
                frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 44100, samples
                samples += 1024
                out.mux(sound.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            out.mux(sound.encode())
    return path


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(f.samples / f.sample_rate for f in container.decode(audio=0))


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "clip.mp4")


def test_generated_clip_is_what_the_tests_assume(clip) -> None:
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.has_audio) == (SIZE, SIZE, RATE, True)
    frames = list(read_frames(clip))
    assert len(frames) == FRAMES and frames[0].shape == (SIZE, SIZE, 3)
    assert is_video(clip)


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".webm"])
def test_round_trip_keeps_frames_rate_and_audio(tmp_path, clip, ext) -> None:
    seen = []

    def invert(frame: torch.Tensor) -> torch.Tensor:
        seen.append(frame.shape)
        return 1 - frame

    dst = tmp_path / f"out{ext}"
    assert stylize_video(clip, dst, invert, progress=False) == FRAMES
    assert seen == [(1, 3, SIZE, SIZE)] * FRAMES
    info = probe(dst)
    assert (info.width, info.height, info.fps, info.has_audio) == (SIZE, SIZE, RATE, True)
    frames = list(read_frames(dst))
    assert len(frames) == FRAMES
    first_in = next(read_frames(clip)).astype(int)
    assert np.abs(frames[0].astype(int) - (255 - first_in)).mean() < 12  # lossy codecs
    assert abs(audio_seconds(dst) - audio_seconds(clip)) < 0.05
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_gif_in_and_out(tmp_path, clip) -> None:
    gif = tmp_path / "anim.gif"
    assert stylize_video(clip, gif, lambda f: f, progress=False) == FRAMES
    assert is_video(gif)
    info = probe(gif)
    assert not info.has_audio and abs(float(info.fps) - RATE) < 1  # GIF delays: 1/100 s steps
    back = tmp_path / "back.gif"
    assert stylize_video(gif, back, lambda f: f, progress=False) == FRAMES


def test_size_option_and_clip_without_audio(tmp_path) -> None:
    src = make_clip(tmp_path / "silent.mov", audio=False)
    dst = tmp_path / "small.mp4"
    stylize_video(src, dst, lambda f: f, size=16, progress=False)
    info = probe(dst)
    assert (info.width, info.height, info.has_audio) == (16, 16, False)
    assert len(list(read_frames(dst))) == FRAMES


def test_stylize_paths_handles_videos(tmp_path, clip) -> None:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    model = export_model(net, tmp_path / "waves.pt", style="waves")
    written = stylize_paths(model, [clip], tmp_path / "out",
                            StylizeOptions(device="cpu", progress=False))
    assert written == [tmp_path / "out" / "clip_waves.mp4"]
    assert probe(written[0]).fps == Fraction(RATE) and len(list(read_frames(written[0]))) == 8


def test_not_a_video_is_a_one_line_error(tmp_path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello")
    with pytest.raises(FastNSTError, match="not a video") as err:
        stylize_video(fake, tmp_path / "out.mp4", lambda f: f, progress=False)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4"]


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_zero_frame_clip_leaves_no_file(tmp_path, ext) -> None:
    empty = make_clip(tmp_path / f"empty{ext}", frames=0, audio=False)
    with pytest.raises(FastNSTError, match=rf"empty{ext} (has no video stream|is not a video "
                                           "PyAV can read)") as err:
        stylize_video(empty, tmp_path / "out.mp4", lambda f: f, progress=False)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"empty{ext}"]


def test_audio_only_file_is_an_error(tmp_path) -> None:
    with av.open(str(tmp_path / "tone.m4a"), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=44100, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode())
    with pytest.raises(FastNSTError, match="has no video stream"):
        stylize_video(tmp_path / "tone.m4a", tmp_path / "out.mp4", lambda f: f, progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_failing_frame_function_leaves_no_partial_file(tmp_path, clip) -> None:
    calls = []

    def boom(frame: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise FastNSTError("stop here")
        return frame

    with pytest.raises(FastNSTError, match="stop here"):
        stylize_video(clip, tmp_path / "out.mp4", boom, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_unsupported_video_output_is_an_error(tmp_path, clip) -> None:
    with pytest.raises(FastNSTError, match="cannot write videos as .avi"):
        stylize_video(clip, tmp_path / "out.avi", lambda f: f, progress=False)
