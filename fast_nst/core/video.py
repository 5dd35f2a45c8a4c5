"""Videos through PyAV, one frame at a time: read, transform, encode, audio kept.

`stylize_video(src, dst, frame_fn)` is the whole loop; `frame_fn` takes and returns one
(1, 3, H, W) float 0..1 frame, so other per-frame methods (e.g. temporally consistent
stylization) plug in unchanged. The output is written under a temporary name and renamed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.core.images import atomic_path
from fast_nst.core.sizes import target_size
from fast_nst.errors import FastNSTError

FrameFn = Callable[[Tensor], Tensor]

# container format, video codec, pixel format, audio codec (None: audio dropped)
FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p", "aac"),
    ".mov": ("mov", "libx264", "yuv420p", "aac"),
    ".mkv": ("matroska", "libx264", "yuv420p", "aac"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", "libopus"),
    ".gif": ("gif", "gif", "rgb8", None),
}
READ_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int | None  # from the header; None when the container does not say
    has_audio: bool


def is_video(path: str | os.PathLike) -> bool:
    """A video extension; a .gif only when it has more than one frame."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext != ".gif":
        return ext in READ_EXTENSIONS
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except OSError:
        return False


def check_video_output(path: str | os.PathLike) -> None:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise FastNSTError(f"cannot write videos as {ext or '(no extension)'}: {path}; "
                           f"use one of {', '.join(FORMATS)}")


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise FastNSTError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise FastNSTError(f"{path} is not a video PyAV can read ({err})") from None
    if not container.streams.video:
        container.close()
        raise FastNSTError(f"{path} has no video stream")
    kind = container.format.name
    if kind == "image2" or kind.endswith("_pipe"):  # FFmpeg's still-image demuxers
        container.close()
        name = kind.removesuffix("_pipe").upper()
        raise FastNSTError(f"{path} is a {name} image, not a video; rename it with its image "
                           f"extension (e.g. .{'jpg' if name == 'JPEG' else name.lower()})")
    return container


def _rate(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def probe(path: str | os.PathLike) -> VideoInfo:
    with _open(Path(path)) as container:
        v = container.streams.video[0]
        return VideoInfo(v.codec_context.width, v.codec_context.height, _rate(v),
                         v.frames or None, bool(container.streams.audio))


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode frames one by one as (H, W, 3) uint8 RGB arrays."""
    with _open(Path(path)) as container:
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as err:
            raise FastNSTError(f"{path}: cannot decode video ({err})") from None


def frame_to_tensor(frame: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255


def tensor_to_frame(image: Tensor) -> np.ndarray:
    return (image[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
            .contiguous().numpy())


class VideoWriter:
    """Encode RGB frames (and optionally audio frames) into `path`'s container format.

    Frames are timed at `fps`; H.264/VP9 need even sizes, so odd frames lose their last row or
    column. Use as a context manager inside `atomic_path`.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction, *, audio_rate: int | None = None,
                 audio_layout: str = "stereo", container_format: str | None = None) -> None:
        ext = Path(path).suffix.lower()
        # the temporary name from atomic_path ends in .tmp<ext>, so the extension still rules
        check_video_output(path)
        fmt, self.codec, self.pix_fmt, audio_codec = FORMATS[ext]
        self.container = av.open(str(path), "w", format=container_format or fmt)
        self.fps = Fraction(fps).limit_denominator(100000)
        self.video: av.video.stream.VideoStream | None = None
        self.audio = None
        self.count = 0
        self.pending: list[av.AudioFrame] = []  # audio that arrives before the first frame
        if audio_rate and audio_codec:
            rate = audio_rate if audio_codec != "libopus" else 48000
            self.audio = self.container.add_stream(audio_codec, rate=rate, layout=audio_layout)
            self.resampler = av.AudioResampler(format=self.audio.codec_context.format,
                                               layout=audio_layout, rate=rate)

    def _start(self, width: int, height: int) -> None:
        self.video = self.container.add_stream(self.codec, rate=self.fps)
        even = self.pix_fmt == "yuv420p"
        self.width = width - width % 2 if even else width
        self.height = height - height % 2 if even else height
        self.video.width, self.video.height = self.width, self.height
        self.video.pix_fmt = self.pix_fmt
        self.video.codec_context.time_base = 1 / self.fps
        if self.codec == "libx264":
            self.video.options = {"crf": "18", "preset": "medium"}

    def write(self, frame: np.ndarray) -> None:
        """One (H, W, 3) uint8 RGB frame."""
        if self.video is None:
            self._start(frame.shape[1], frame.shape[0])
        frame = np.ascontiguousarray(frame[:self.height, :self.width])
        out = av.VideoFrame.from_ndarray(frame, format="rgb24")
        out.pts, out.time_base = self.count, 1 / self.fps
        self.count += 1
        self.container.mux(self.video.encode(out))
        while self.pending:
            self.write_audio(self.pending.pop(0))

    def write_audio(self, frame: av.AudioFrame) -> None:
        if self.audio is None:
            return
        if self.video is None:  # streams must all exist before the first packet is muxed
            self.pending.append(frame)
            return
        frame.pts = None
        for resampled in self.resampler.resample(frame):
            self.container.mux(self.audio.encode(resampled))

    def close(self) -> None:
        if self.video is not None:
            self.container.mux(self.video.encode())
        if self.audio is not None:
            for resampled in self.resampler.resample(None):
                self.container.mux(self.audio.encode(resampled))
            self.container.mux(self.audio.encode())
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # failing already: release the file, the original error is the one to report
            self.container.close()
        except Exception:  # noqa: BLE001
            pass


def _resized(frame: np.ndarray, size: int | None, scale: float | None) -> np.ndarray:
    h, w = frame.shape[:2]
    new = target_size(w, h, size=size, scale=scale)
    if new == (w, h):
        return frame
    return np.asarray(Image.fromarray(frame).resize(new, Image.Resampling.LANCZOS))


def stylize_video(src: str | os.PathLike, dst: str | os.PathLike, frame_fn: FrameFn, *,
                  size: int | None = None, scale: float | None = None,
                  progress: bool = True) -> int:
    """Decode `src`, apply `frame_fn` to each frame, encode `dst` at the same frame rate with
    the audio re-encoded (AAC for mp4/mov, Opus for webm; GIF has none). Streams: one frame in
    memory at a time. Returns the number of frames; no file is left behind on failure."""
    src, dst = Path(src), Path(dst)
    check_video_output(dst)
    with _open(src) as container:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        vstream.thread_type = "AUTO"
        info = VideoInfo(vstream.codec_context.width, vstream.codec_context.height,
                         _rate(vstream), vstream.frames or None, astream is not None)
        layout = "stereo"
        if astream is not None and astream.codec_context.layout.nb_channels == 1:
            layout = "mono"
        bar = tqdm(total=info.frames, desc=src.name, unit="frame", disable=not progress)
        with atomic_path(dst) as tmp:
            with VideoWriter(tmp, info.fps, audio_rate=astream.rate if astream else None,
                             audio_layout=layout, container_format=FORMATS[dst.suffix.lower()][0]
                             ) as writer:
                streams = [s for s in (vstream, astream) if s is not None]
                try:
                    for packet in container.demux(*streams):
                        for frame in packet.decode():
                            if isinstance(frame, av.AudioFrame):
                                writer.write_audio(frame)
                                continue
                            rgb = _resized(frame.to_ndarray(format="rgb24"), size, scale)
                            writer.write(tensor_to_frame(frame_fn(frame_to_tensor(rgb))))
                            bar.update()
                except av.FFmpegError as err:
                    raise FastNSTError(f"{src}: cannot decode video ({err})") from None
                if writer.count == 0:
                    raise FastNSTError(f"{src} has no video frames; nothing written")
        bar.close()
    return writer.count
