"""Images across cores: on a CPU, a folder of images can run one image per core, each forward
call on one thread, instead of one image at a time on every core.

Why: reading and writing an image file is single-threaded, so while one image's files are read
or written the other cores wait. With one image per core the file work of one image runs beside
the network of another. Measured end to end on 2 cores of an AMD EPYC Zen 5 (2026-12-01), 16
images of 512 px, whose PNGs take about 28 ms each to read and write: eager fp32 214-219 ->
163-168 ms per image, eager bf16 128 -> 101, under emulated AVX2 eager fp32 256-270 -> 210-217
(docs/speed.md). Compiled packages are not run this way: their calls overlap poorly (a stored
compiled bf16 network: 72 ms per image one at a time, 93-104 across cores), nor are large
images (each core would hold one image's activations).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

# One image per core only up to this many pixels per forward call: memory grows with the images
# in flight, and above it one image's work is enough to keep every core busy.
MAX_PIXELS_PER_CORE = 1 << 20  # 1 megapixel (measured at 512 x 512)


def worth_spreading(calls: int, pixels_per_call: int, threads: int | None = None) -> int:
    """Workers for `calls` forward calls of `pixels_per_call` each: one per thread when there
    are at least two calls per thread and each is small enough, else 1 (one call at a time)."""
    threads = threads or torch.get_num_threads()
    if threads < 2 or calls < 2 * threads or pixels_per_call > MAX_PIXELS_PER_CORE:
        return 1
    return threads


def map_across_cores(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """`map(fn, items)`, in order, with `workers` threads of one torch thread each (workers=1:
    plain map). At most two items per worker run ahead of the one being returned, so memory
    stays bounded and a failure, raised when its item is reached, leaves few started."""
    if workers < 2:
        yield from map(fn, items)
        return
    before = torch.get_num_threads()
    pending: deque[Future[R]] = deque()
    pool: ThreadPoolExecutor | None = None
    try:
        torch.set_num_threads(1)  # every worker's calls run on its own thread
        pool = ThreadPoolExecutor(workers, thread_name_prefix="fast_nst-core")
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True)
        torch.set_num_threads(before)
