"""Stylization speed and memory: `make bench-stylize` (not a test; run on a quiet machine).

For a full-width Johnson network with RANDOM weights (speed does not depend on the weights; the
PSNR of a fast path against fp32 is a numerical check of the same network), it prints Markdown:
- ms per image at each size for fp32 eager and every candidate fast path, with the speed-up and
  the PSNR against fp32 eager; the fastest candidate with PSNR >= 40 dB is marked;
- the peak resident memory (VmHWM high-water) of stylizing a tiled 4000 x 3000 PNG file
  end to end (decode, tiles, encode) in a fresh subprocess.

    python benchmarks/bench_stylize.py                       # the full run (~15 min on 2 cores)
    python benchmarks/bench_stylize.py --tiny                # a smoke test in about a minute
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_nst.device import describe_hardware  # noqa: E402
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.inference.aot import CACHE_ENV  # noqa: E402
from fast_nst.inference.export import export_file  # noqa: E402
from fast_nst.inference.pipeline import StylizeOptions, stylize_paths  # noqa: E402
from fast_nst.inference.runtime import Stylizer  # noqa: E402
from fast_nst.model.files import StyleModel  # noqa: E402
from fast_nst.model.network import NetConfig, TransformerNet  # noqa: E402
from fast_nst.reports.tables import markdown_table  # noqa: E402

PSNR_TARGET = 40.0


def random_net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(NetConfig(width="full")).eval()


def photo(h: int, w: int) -> torch.Tensor:
    """A smooth photo-like (1, 3, h, w) image in 0..1 (random noise would be unrealistic)."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(1, 3, max(2, h // 32), max(2, w // 32), generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic").clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def time_ms(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor, float]:
    """Best of `repeats` in ms after two warm-up calls; also the first call's seconds
    (compilation for the compiled paths)."""
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    out = fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000, out, first


Path_ = Callable[[torch.Tensor], torch.Tensor]


def candidates(net: TransformerNet, workdir: Path) -> dict[str, Path_]:
    """Name -> a function (1, 3, H, W) -> stylized, each an inference path users can pick."""
    paths = {
        "fp32 eager": Stylizer(net, device="cpu"),
        "bf16": Stylizer(net, device="cpu", precision="bf16"),
        "compile fp32": Stylizer(net, device="cpu", compile=True),
        "compile bf16": Stylizer(net, device="cpu", precision="bf16", compile=True),
        "compile bf16 + channels_last": Stylizer(net, device="cpu", precision="bf16",
                                                 channels_last=True, compile=True),
    }
    try:
        import onnxruntime as ort

        model = StyleModel(net, "bench", "export", workdir / "bench.pt")
        path, _ = export_file(model, "onnx", workdir / "bench.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        paths["onnxruntime fp32"] = lambda x: torch.from_numpy(
            session.run(None, {"image": x.numpy()})[0])
    except ImportError:
        pass
    return paths


def speed_table(sizes: list[int], repeats: int, skip: set[str]) -> tuple[str, dict]:
    net = random_net()
    rows, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[CACHE_ENV] = tmp  # compile from scratch: no packages from an earlier run
        paths = {k: v for k, v in candidates(net, Path(tmp)).items() if k not in skip}
        for size in sizes:
            x = photo(size, size)
            results = {}
            for name, fn in paths.items():
                ms, out, first = time_ms(lambda fn=fn, x=x: fn(x), repeats)
                results[name] = (ms, out, first)
                print(f"  {size} px  {name:30s} {ms:9.1f} ms  (first call {first:.1f} s)",
                      file=sys.stderr, flush=True)
            base_ms, base_out, _ = results["fp32 eager"]
            scored = {n: (ms, psnr(o, base_out), first) for n, (ms, o, first) in results.items()}
            ok = [n for n, (ms, p, _) in scored.items() if n != "fp32 eager" and p >= PSNR_TARGET]
            best = min(ok, key=lambda n: scored[n][0]) if ok else None
            summary[size] = {"fp32_ms": base_ms, "best": best,
                             "best_ms": scored[best][0] if best else None,
                             "best_psnr": scored[best][1] if best else None}
            for name, (ms, p, first) in scored.items():
                mark = " **fastest**" if name == best else ""
                p_text = "reference" if name == "fp32 eager" else f"{p:.1f}"
                rows.append({"size (px)": size, "path": f"{name}{mark}", "ms / image": f"{ms:.0f}",
                             "speed-up vs fp32 eager": f"{base_ms / ms:.2f}x",
                             "PSNR vs fp32 (dB)": p_text, "first call (s)": f"{first:.1f}"})
    return markdown_table(rows).rstrip("\n"), summary


def peak_rss_mib() -> float:
    """This process's resident high-water mark. VmHWM starts afresh at exec; getrusage's
    ru_maxrss does not (Linux copies the parent's at fork), so prefer VmHWM."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_child(width: int, height: int, tile: int, precision: str) -> None:
    """In a fresh process: write a PNG, stylize it tiled through the public API, report RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        src = Path(tmp) / "big.png"  # made in uint8 with PIL: the set-up stays small
        small = (photo(max(2, height // 32), max(2, width // 32))[0].permute(1, 2, 0) * 255)
        image = Image.fromarray(small.byte().numpy()).resize((width, height), Image.BICUBIC)
        image.save(src, compress_level=1)
        del image
        model = StyleModel(random_net(), "bench", "export", src)
        before = peak_rss_mib()
        start = time.perf_counter()
        opts = StylizeOptions(device="cpu", precision=precision, tile=tile, progress=False,
                              channels_last=False, compile=False)
        stylize_paths(model, [src], Path(tmp) / "out.png", opts)
        seconds = time.perf_counter() - start
        peak = peak_rss_mib()
    print(json.dumps({"peak_mib": peak, "before_mib": before, "seconds": seconds}))


def memory_row(width: int, height: int, tile: int, precision: str) -> str:
    cmd = [sys.executable, __file__, "--memory-child", f"{width}x{height}", "--tile", str(tile),
           "--precision", precision]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    verdict = "yes" if r["peak_mib"] < 2048 else "NO"
    return (f"| {width} x {height} | {tile} px, overlap {min(128, tile // 4)} | {precision} | "
            f"{r['seconds']:.1f} | "
            f"{r['before_mib']:.0f} | {r['peak_mib']:.0f} | {verdict} |")


def sizes_arg(text: str) -> list[int]:
    """`256,512` -> [256, 512]; each a side of at least 16 px."""
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise FastNSTError(f"--sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 16:
        raise FastNSTError(f"--sizes must each be at least 16 px, got {text!r}")
    return sizes


def image_arg(text: str) -> tuple[int, int]:
    """`4000x3000` -> (4000, 3000); each side at least 32 px (the smallest tile)."""
    try:
        w, h = map(int, text.lower().split("x"))
    except ValueError:
        raise FastNSTError(f"--memory must be WIDTHxHEIGHT, e.g. 4000x3000, got {text!r}") from None
    if min(w, h) < 32:
        raise FastNSTError(f"--memory sides must be at least 32 px, got {text!r}")
    return w, h


def check_args(args: argparse.Namespace) -> None:
    if args.repeats < 1:
        raise FastNSTError(f"--repeats must be at least 1, got {args.repeats}")
    if args.tile < 32:
        raise FastNSTError(f"--tile must be at least 32 px, got {args.tile}")


@exit_on_user_error
def main() -> None:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,512,1024", help="comma-separated sides (px)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory", default="4000x3000", help="WxH of the tiled memory run")
    p.add_argument("--tile", type=int, default=768)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="of the memory run")
    p.add_argument("--skip", default="", help="comma-separated paths to leave out")
    p.add_argument("--tiny", action="store_true", help="smoke test: 64/96 px, 400x300 memory")
    p.add_argument("--no-memory", action="store_true", help="leave out the memory run")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        w, h = image_arg(args.memory_child)
        memory_child(w, h, args.tile, args.precision)
        return
    if args.tiny:
        args.sizes, args.repeats, args.memory, args.tile = "64,96", 1, "400x300", 128
    check_args(args)
    sizes, (w, h) = sizes_arg(args.sizes), image_arg(args.memory)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(describe_hardware() + "\n")
    print(f"## Stylization speed (full-width network, random weights; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads)\n")
    table, summary = speed_table(sizes, args.repeats, skip)
    print(table)
    print()
    for size, s in summary.items():
        if s["best"]:
            print(f"- {size} px: fastest path with PSNR >= {PSNR_TARGET:.0f} dB is "
                  f"**{s['best']}**: {s['fp32_ms'] / s['best_ms']:.2f}x fp32 eager "
                  f"({s['best_ms']:.0f} vs {s['fp32_ms']:.0f} ms), PSNR {s['best_psnr']:.1f} dB")
    if args.no_memory:
        return
    print(f"\n## Peak memory of a tiled {w} x {h} image (fresh process, PNG in and out)\n")
    print("| image | tiles | precision | seconds | RSS before (MiB) | peak RSS (MiB) | "
          "< 2 GiB |\n|---|---|---|---|---|---|---|")
    print(memory_row(w, h, args.tile, args.precision))


if __name__ == "__main__":
    main()
