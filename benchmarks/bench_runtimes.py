"""Every CPU runtime for one style network, per image and per folder, with PSNR against fp32.

    python benchmarks/bench_runtimes.py                      # starry_night, 16 images of 512 px
    python benchmarks/bench_runtimes.py --model models/udnie.pt --images 8 --repeats 3

Runtimes: PyTorch eager (the plain network, and with the last layer on pixel blocks, as
`stylize.py` runs fp32 on a CPU), PyTorch compiled ahead of time (`--compile`'s AOTInductor
package; its compile time is reported apart), ONNX Runtime's CPU provider in fp32 (all graph
optimizations), and ONNX Runtime int8: dynamic quantization (weights int8, activations
quantized per call) and static QDQ quantization calibrated on other photos than the ones
timed. "one image" is the median forward pass of one image; "folder" reads, stylizes and writes
every image one after the other (PNG in, PNG out), per image. The PSNR is the smallest over the
folder, against stylize's fp32 eager output.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_auto import PHOTOS, write_inputs  # noqa: E402

from fast_nst.device import describe_hardware  # noqa: E402
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.inference.blocks import with_block_output  # noqa: E402
from fast_nst.inference.export import PortableNet  # noqa: E402
from fast_nst.inference.runtime import Stylizer  # noqa: E402
from fast_nst.model.files import load_model  # noqa: E402
from fast_nst.reports.tables import markdown_table  # noqa: E402

Run = Callable[[np.ndarray], np.ndarray]  # (1, 3, H, W) float32 0..1 -> same


def torch_run(module: Callable) -> Run:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()
    return run


def onnx_file(net: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(PortableNet(net).eval(), (torch.rand(1, 3, 64, 64),), str(path),
                          input_names=["image"], output_names=["stylized"], opset_version=17,
                          dynamo=False, dynamic_axes={"image": {0: "b", 2: "h", 3: "w"},
                                                      "stylized": {0: "b", 2: "h", 3: "w"}})
    return path


def ort_run(path: Path) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def quantized(path: Path, kind: str, calibration: list[np.ndarray]) -> Path:
    """`path` quantized to int8: `dynamic` or `static` (QDQ, calibrated on `calibration`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"image": x} for x in calibration)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    prepared, out = path.with_suffix(".pre.onnx"), path.with_suffix(f".{kind}.onnx")
    quant_pre_process(str(path), str(prepared))
    if kind == "dynamic":
        quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QUInt8)
    else:
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True)
    return out


def read(path: Path) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def write(image: np.ndarray, path: Path) -> None:
    levels = (np.clip(image[0].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(levels).save(path)


def one_image_ms(run: Run, x: np.ndarray, repeats: int) -> float:
    run(x)  # warm-up: allocations, ORT's first-call planning
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def folder_ms(run: Run, files: list[Path], out: Path) -> float:
    out.mkdir()
    start = time.perf_counter()
    for f in files:
        write(run(read(f)), out / f.name)
    return (time.perf_counter() - start) / len(files) * 1000


def psnr(out: Path, reference: Path) -> float:
    worst = math.inf
    for f in sorted(reference.glob("*.png")):
        a = np.asarray(Image.open(f), dtype=np.float64) / 255
        b = np.asarray(Image.open(out / f.name), dtype=np.float64) / 255
        mse = float(np.mean((a - b) ** 2))
        worst = min(worst, math.inf if mse == 0 else 10 * math.log10(1 / mse))
    return worst


def calibration_photos(size: int, skip: int, count: int = 8) -> list[np.ndarray]:
    """`count` training photos after the `skip` timed ones (smooth noise where absent)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(Path(tmp) / "c", skip + count, size)
        return [read(p) for p in sorted((Path(tmp) / "c").glob("*.png"))[skip:]]


def runtimes(net: torch.nn.Module, tmp: Path, size: int, skip: int
             ) -> dict[str, tuple[Run, float]]:
    """{name: (run, seconds it took to prepare)}."""
    found: dict[str, tuple[Run, float]] = {}

    def add(name: str, build: Callable[[], Run]) -> None:
        start = time.perf_counter()
        try:
            found[name] = (build(), time.perf_counter() - start)
        except Exception as err:  # a runtime that fails here is reported, not fatal
            print(f"{name}: failed ({type(err).__name__}: {str(err)[:200]})", file=sys.stderr)

    model = onnx_file(net, tmp / "net.onnx")
    calibration = calibration_photos(size, skip)
    add("torch fp32 eager (stylize's fp32: last layer on pixel blocks)",
        lambda: torch_run(with_block_output(net)))
    add("torch fp32 eager, plain network", lambda: torch_run(net))

    def compiled() -> Run:
        stylizer = Stylizer(net, device="cpu", precision="fp32", compile=True,
                            compile_shapes=frozenset({(1, size, size)}))
        stylizer(torch.rand(1, 3, size, size))  # compiles (or loads the stored package)
        return lambda x: stylizer(torch.from_numpy(x)).numpy()

    add("torch fp32 AOT-compiled (--compile)", compiled)
    add("ONNX Runtime fp32", lambda: ort_run(model))
    add("ONNX Runtime int8 dynamic", lambda: ort_run(quantized(model, "dynamic", calibration)))
    add("ONNX Runtime int8 static (QDQ, per channel)",
        lambda: ort_run(quantized(model, "static", calibration)))
    return found


def check_args(args) -> None:
    for name, least in (("images", 1), ("size", 16), ("repeats", 1)):
        if getattr(args, name) < least:
            raise FastNSTError(f"--{name} must be at least {least}, got {getattr(args, name)}")


@exit_on_user_error
def main() -> None:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(ROOT / "models" / "starry_night.pt"))
    p.add_argument("--images", type=int, default=16, help="images in the folder")
    p.add_argument("--size", type=int, default=512, help="their side (px)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls for one image")
    args = p.parse_args()
    check_args(args)
    net = load_model(args.model).net.float().eval()
    print(describe_hardware() + "\n")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        write_inputs(tmp / "in", args.images, args.size)
        files = sorted((tmp / "in").glob("*.png"))
        rows, reference, base = [], None, None
        for name, (run, prepare) in runtimes(net, tmp, args.size, args.images).items():
            single = one_image_ms(run, read(files[0]), args.repeats)
            out = tmp / f"out{len(rows)}"
            per_image = folder_ms(run, files, out)
            reference = reference or out
            base = base or (single, per_image)
            rows.append({"runtime": name, "one image (ms)": f"{single:.0f}",
                         "folder (ms/image)": f"{per_image:.0f}",
                         "speed-up (one, folder)":
                             f"{base[0] / single:.2f}x, {base[1] / per_image:.2f}x",
                         "min PSNR vs fp32 (dB)": f"{psnr(out, reference):.1f}",
                         "prepare (s)": f"{prepare:.1f}"})
            print(f"{name}: {single:.0f} ms, {per_image:.0f} ms/image", file=sys.stderr,
                  flush=True)
    source = "training photos" if PHOTOS.is_dir() else "smooth random images"
    print(f"{Path(args.model).name}, {args.images} {source} of {args.size} x {args.size} px, "
          f"{torch.get_num_threads()} threads; speed-up and PSNR against stylize's fp32 eager\n")
    print(markdown_table(rows), end="")


if __name__ == "__main__":
    main()
