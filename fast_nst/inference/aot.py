"""Compiled networks kept on disk, so that a shape compiled once runs compiled in every later
process.

`torch.compile` compiles again in each process (15-20 s on 2 cores, a few with a warm inductor
cache, plus Dynamo's tracing), which a folder of a few dozen images never repays. Here a network
is compiled ahead of time (`torch.export` + AOTInductor, weights frozen in) into one package per
network, precision, layout, input shape, CPU and torch version, stored under `cache_dir()`;
loading one takes about 0.1 s. Used on CPUs, where a compile is a C++ build (see docs/speed.md).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from fast_nst.device import cpu_capability, cpu_native_bf16
from fast_nst.inference.fast_path import FastPath, ShapeHistory

log = logging.getLogger(__name__)

CACHE_ENV = "FAST_NST_CACHE"
FORMAT = 2  # bump when what goes into a package changes (low_precision_net, blocks,
#            export options)
Shape = tuple[int, int, int]  # (batch, height, width) of a forward call


def cache_dir() -> Path:
    """$FAST_NST_CACHE, else $XDG_CACHE_HOME/fast_nst (~/.cache/fast_nst), + /compiled."""
    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fast_nst"
    return Path(root) / "compiled"


def make_cache_dir(folder: Path) -> None:
    """Create the package folder readable and writable by its owner alone: whoever can write
    there can make stylize load their code (docs/robustness.md)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def network_digest(net: torch.nn.Module) -> str:
    """The network's architecture and weights, hashed (a few ms for our networks)."""
    h = hashlib.sha256(repr(net).encode())
    for name, tensor in net.state_dict().items():
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def package_path(digest: str, precision: str, channels_last: bool, shape: Shape) -> Path:
    """Where the package for this network (`network_digest`), path and input shape lives."""
    hardware = f"{cpu_capability()}:bf16={cpu_native_bf16()}:torch={torch.__version__}"
    key = f"{FORMAT}|{digest}|{precision}|{channels_last}|{shape}|{hardware}"
    short = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir() / f"{'x'.join(map(str, shape))}-{precision}-{short}.pt2"


def pixels_run(package: Path) -> int:
    """Pixels earlier runs ran eager for this package's shape (see `History.record`)."""
    try:
        return int(package.with_suffix(".pixels").read_text())
    except (OSError, ValueError):
        return 0


class History:
    """What earlier runs left in the cache for one network: the shapes compiled, and the
    pixels run eager per shape, so that a shape used again and again is compiled once its
    work adds up (`fast_nst.device.worth_compiling`)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.digest = network_digest(net)

    def __call__(self, shape: Shape, precision: str, channels_last: bool) -> ShapeHistory:
        path = package_path(self.digest, precision, channels_last, shape)
        return ShapeHistory(stored=path.is_file(), pixels=pixels_run(path))

    def record(self, work: dict[Shape, int], path: FastPath) -> None:
        """Count the pixels of the shapes this run leaves eager (best effort: a read-only
        cache only loses the count)."""
        for shape, calls in work.items():
            if path.shapes is None or shape in path.shapes:
                continue
            ledger = package_path(self.digest, path.precision, path.channels_last,
                                  shape).with_suffix(".pixels")
            tmp = ledger.with_name(f".{ledger.name}.{os.getpid()}.tmp")
            try:
                make_cache_dir(ledger.parent)
                tmp.write_text(str(pixels_run(ledger) + calls * math.prod(shape)))
                os.replace(tmp, ledger)
            except OSError as err:
                log.debug("could not count the work for %s: %s", shape, err)


def build(net: torch.nn.Module, example: Tensor, path: Path) -> None:
    """Export `net` for `example`'s shape and compile it into `path` (written atomically)."""
    make_cache_dir(path.parent)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.pt2")
    try:
        with torch.inference_mode(False), torch.no_grad():
            program = torch.export.export(net, (example.clone(),))
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(tmp), inductor_configs={"freezing": True})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class CompiledNetwork:
    """`net` compiled per input shape, each shape's package loaded from the cache or built
    there on its first call. `digest`: `network_digest` of the float32 network `net` was made
    from at `precision` (the key callers can compute before building `net`). A shape that fails
    to compile (no C++ compiler, say) runs eager, with one warning."""

    def __init__(self, net: torch.nn.Module, digest: str, precision: str,
                 channels_last: bool) -> None:
        self.net, self.digest = net, digest
        self.precision, self.channels_last = precision, channels_last
        self.loaded: dict[Shape, Callable[[Tensor], Tensor]] = {}

    def path(self, shape: Shape) -> Path:
        return package_path(self.digest, self.precision, self.channels_last, shape)

    def __call__(self, x: Tensor) -> Tensor:
        shape = (x.shape[0], x.shape[2], x.shape[3])
        if shape not in self.loaded:
            self.loaded[shape] = self._load(shape, x)
        return self.loaded[shape](x)

    def _load(self, shape: Shape, x: Tensor) -> Callable[[Tensor], Tensor]:
        path = self.path(shape)
        try:
            if not path.is_file():
                log.info("compiling the network for %s (once; stored in %s)", shape, path.parent)
                build(self.net, x, path)
            return torch._inductor.aoti_load_package(str(path))
        except Exception as err:  # noqa: BLE001 - a failed speed-up must not fail the run
            path.unlink(missing_ok=True)  # a package that does not load is built again next time
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            log.warning("compiling for %s failed, running eager: %s", shape, first_line)
            return self.net
