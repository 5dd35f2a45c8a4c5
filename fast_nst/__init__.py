"""fast_nst: fast neural style transfer (Johnson et al.) and the classic optimizer (Gatys et al.)."""

from fast_nst.errors import FastNSTError

__all__ = ["FastNSTError"]
__version__ = "0.1.0"
