"""fast_nst.inference.aot: networks compiled ahead of time, stored on disk per shape and
reused by later processes; the fast-path rule that counts them as cheap."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from fast_nst.inference import aot
from fast_nst.inference.pipeline import Pipeline, StylizeOptions
from fast_nst.inference.runtime import Stylizer
from fast_nst.model.files import load_model
from tests.stylize_helpers import tiny_net
from tests.tolerance import PIXEL_ATOL

SHAPE = (1, 32, 32)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))
    return tmp_path / "compiled"


def never_build(*args) -> None:
    raise AssertionError("compiled again instead of loading the stored package")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> SimpleNamespace:
    """One AOT compile for the module (it takes most of a minute on 2 cores): `tiny_net` at
    SHAPE through a Stylizer, into a cache folder of its own."""
    root = tmp_path_factory.mktemp("aot")
    net = tiny_net()
    a = torch.rand(*SHAPE[:1], 3, *SHAPE[1:])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(aot.CACHE_ENV, str(root))
        stylizer = Stylizer(net, device="cpu", compile=True, compile_shapes=frozenset({SHAPE}))
        out = stylizer(a)
    return SimpleNamespace(net=net, stylizer=stylizer, a=a, out=out, root=root,
                           folder=root / "compiled")


def test_a_shape_is_compiled_once_stored_and_loaded_by_the_next_stylizer(compiled, monkeypatch
                                                                         ) -> None:
    net, first, a = compiled.net, compiled.stylizer, compiled.a
    other = torch.rand(1, 3, 24, 32)
    with torch.inference_mode():
        want_a = net(a)
    torch.testing.assert_close(compiled.out, want_a, atol=PIXEL_ATOL, rtol=0)  # compiled fp32
    # not a planned shape: eager (bit for bit), nothing stored
    assert torch.equal(first(other), first.eager(other))
    torch.testing.assert_close(first(other), net(other), atol=PIXEL_ATOL, rtol=0)
    stored = sorted(p.name for p in compiled.folder.glob("*.pt2"))
    assert len(stored) == 1 and stored[0].startswith("1x32x32-fp32-")
    assert compiled.folder.stat().st_mode & 0o777 == 0o700  # nobody else may plant code there

    monkeypatch.setenv(aot.CACHE_ENV, str(compiled.root))
    monkeypatch.setattr(aot, "build", never_build)  # a later process only loads
    second = Stylizer(net, device="cpu", compile=True, compile_shapes=frozenset({SHAPE}))
    torch.testing.assert_close(second(a), want_a, atol=PIXEL_ATOL, rtol=0)


def test_the_package_key_changes_with_weights_precision_layout_and_shape() -> None:
    net = tiny_net()
    digest = aot.network_digest(net)
    assert aot.network_digest(tiny_net()) == digest  # same weights, same key
    with torch.no_grad():
        net.conv2.conv2d.weight[0, 0, 0, 0] += 1e-3
    paths = {aot.package_path(aot.network_digest(net), "fp32", False, SHAPE),
             aot.package_path(digest, "fp32", False, SHAPE),
             aot.package_path(digest, "bf16", False, SHAPE),
             aot.package_path(digest, "fp32", True, SHAPE),
             aot.package_path(digest, "fp32", False, (2, 32, 32))}
    assert len(paths) == 5


def test_a_failed_compile_runs_eager_with_one_warning(cache, monkeypatch, caplog) -> None:
    def broken(*args) -> None:
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(aot, "build", broken)
    net = tiny_net()
    x = torch.rand(1, 3, 16, 16)
    stylizer = Stylizer(net, device="cpu", compile=True)
    with caplog.at_level(logging.WARNING, logger="fast_nst.inference.aot"):
        outs = [stylizer(x), stylizer(x)]
    assert all(torch.equal(out, stylizer.eager(x)) for out in outs)
    assert [r.getMessage() for r in caplog.records] == [
        "compiling for (1, 16, 16) failed, running eager: no C++ compiler found"]
    assert not list(cache.glob("*.pt2"))


def test_a_stored_package_that_does_not_load_is_removed_and_runs_eager(cache, caplog) -> None:
    net = tiny_net()
    x = torch.rand(*SHAPE[:1], 3, *SHAPE[1:])
    stylizer = Stylizer(net, device="cpu", compile=True)
    bad = stylizer.forward.path(SHAPE)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a package")
    with caplog.at_level(logging.WARNING, logger="fast_nst.inference.aot"):
        out = stylizer(x)
    assert torch.equal(out, stylizer.eager(x))
    assert not bad.exists() and "failed, running eager" in caplog.text


@pytest.mark.usefixtures("two_threads")
def test_a_stored_shape_is_used_for_work_too_small_to_repay_a_compile(cache, model_pt, compiled,
                                                                      monkeypatch) -> None:
    model = load_model(model_pt)
    options = StylizeOptions(device="cpu", precision="fp32", progress=False)
    work = Counter({SHAPE: 2_000})  # 2 MP: far below a compile's 32 MP on 2 threads
    assert not Pipeline(model, options, work).path.compile
    # the shape an explicit --compile stored (the same weights as tiny_net, so the same key)
    shutil.copytree(compiled.folder, cache, dirs_exist_ok=True)
    monkeypatch.setattr(aot, "build", never_build)
    pipeline = Pipeline(model, options, work)
    assert pipeline.path.shapes == frozenset({SHAPE})
    assert "compiled for 1 shape(s) (1 already on disk)" in pipeline.path.describe()
    assert not Pipeline(model, options, Counter({SHAPE: 100})).path.compile  # too little work


@pytest.mark.usefixtures("two_threads")
def test_runs_that_stay_eager_add_up_until_a_compile_pays(cache, model_pt) -> None:
    """fp32 on 2 threads pays from 32 MP: two runs of 20 MP each, the second compiles."""
    model = load_model(model_pt)
    work = Counter({SHAPE: 20_000})

    def path(precision: str):
        options = StylizeOptions(device="cpu", precision=precision, progress=False)
        return Pipeline(model, options, work).path

    assert not path("fp32").compile
    assert not path("bf16").compile  # counted apart (and bf16 needs 128 MP)
    assert path("fp32").shapes == frozenset({SHAPE})
    counts = {p.name.split("-")[1]: int(p.read_text()) for p in cache.glob("*.pixels")}
    assert counts == {"fp32": 20_480_000, "bf16": 20_480_000}  # the runs that stayed eager
