"""fast_nst.optimizer.inputs: the colour preparation of the optimizer's input images."""

from __future__ import annotations

import torch

from fast_nst.optimizer.config import GatysConfig
from fast_nst.optimizer.inputs import load_inputs
from fast_nst.optimizer.loop import run
from tests.optimizer.helpers import RANDOM, TINY


def test_histogram_matching_gives_the_style_the_contents_colours(images) -> None:
    """preserve_color=histogram recolours the style image (targets and style init) to the
    content's palette, so the output keeps the content's colours; without it the style keeps
    its own and pulls the output towards them."""
    base = dict(content=str(images["content"]), style=str(images["style"]), size=32,
                init="style", vgg=RANDOM, progress=False, **TINY)
    plain = load_inputs(GatysConfig(**base))
    matched = load_inputs(GatysConfig(**base, preserve_color="histogram"))
    means = {name: x.mean((0, 2, 3)) for name, x in
             (("content", plain.content), ("plain", plain.styles[0]),
              ("matched", matched.styles[0]), ("init", matched.init))}
    assert (means["plain"] - means["content"]).abs().max() > 0.2, means  # green: 0.2 vs 0.5
    assert torch.allclose(means["matched"], means["content"], atol=0.05), means
    assert torch.allclose(means["init"], means["content"], atol=0.05), means

    def colour_gap(preserve: str | None) -> tuple[float, float]:
        """The output's per-channel distance to the content's colours: of the means, and of
        the histograms (mean gap between the sorted pixel values, a 1-D Wasserstein)."""
        cfg = GatysConfig(**{**base, "init": "content"}, steps=2, preserve_color=preserve)
        out, content = run(cfg).image, plain.content
        assert out.shape == content.shape == (1, 3, 24, 32)
        sort = lambda x: x.flatten(2).sort(-1).values  # noqa: E731
        mean_gap = (out.mean((0, 2, 3)) - content.mean((0, 2, 3))).abs().max().item()
        return mean_gap, (sort(out) - sort(content)).abs().mean((0, 2)).max().item()

    (kept_mean, kept_hist), (plain_mean, plain_hist) = colour_gap("histogram"), colour_gap(None)
    # without it two steps pull the green channel ~0.3 towards the style's flat 0.2
    assert plain_mean > 0.15 and plain_hist > 0.15, (plain_mean, plain_hist)
    assert kept_mean < 0.05 and kept_hist < 0.1, (kept_mean, kept_hist)
    assert kept_mean < plain_mean / 4 and kept_hist < plain_hist / 2
