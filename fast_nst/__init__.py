"""fast_nst: feed-forward style transfer (Johnson et al.) and the classic optimizer (Gatys)."""

from fast_nst.errors import FastNSTError

__all__ = ["FastNSTError"]
__version__ = "0.1.0"
