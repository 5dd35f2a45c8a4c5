"""Read torch files without running code: the one way fast_nst opens a `.pt`, `.ckpt` or `.pth`.

A torch file is a pickle, and a pickle can name any Python callable to run while it loads. A
model file from the internet must never be able to do that, so every file is read with
`torch.load(weights_only=True)`: tensors, numbers, strings and plain containers only. There is
no fallback to a full unpickle; a file that needs one is refused with a one-line error.
"""

from __future__ import annotations

import os
import pickletools
import warnings
from pathlib import Path
from typing import Any

import torch

from fast_nst.errors import FastNSTError

# What torch's safe unpickler says when a file asks for code (a callable or a class to build);
# other refusals ("Unsupported operand", ...) mean the bytes are not a pickle at all.
_NEEDS_CODE = ("Unsupported global", "Unsupported class", "unrecognized function", "reduce")
# Pickle opcodes that import or call something: read (never executed) by `pickletools`.
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"}


def _pickle_asks_for_code(path: Path) -> bool:
    """Whether a plain pickle (which torch's safe reader cannot parse) names code to run.

    `pickletools.genops` only decodes the opcodes; nothing in the file is imported or called.
    """
    try:
        with path.open("rb") as stream:  # the whole pickle must decode, up to its STOP
            names = {op.name for op, _, _ in pickletools.genops(stream)}
    except Exception:  # not a pickle at all (text, truncated, random bytes)
        return False
    return bool(names & _CODE_OPCODES)


def load_torch_file(path: str | os.PathLike, what: str = "model") -> Any:
    """The contents of a torch file, loaded safely onto the CPU; one-line errors."""
    path = Path(path)
    if not path.exists():
        raise FastNSTError(f"{what} not found: {path}")
    if path.is_dir():
        raise FastNSTError(f"{path} is a folder; give a {what} file (.pt, .ckpt or .pth)")
    if path.stat().st_size == 0:
        raise FastNSTError(f"{path} is empty; give a {what} file (.pt, .ckpt or .pth)")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles; the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or hostile files
        text = str(err).strip()
        if any(mark in text for mark in _NEEDS_CODE) or _pickle_asks_for_code(path):
            raise FastNSTError(
                f"{path} refused: it needs Python code to load (a pickled object, not only "
                "tensors), and fast_nst never runs code from a model file; re-export it with "
                "plain tensors and containers") from None
        reason = (text.splitlines()[0] if text else type(err).__name__)
        if "weights_only" in reason:  # torch's preamble; the detail says what it met
            reason = next((line for line in text.splitlines() if "Unsupported" in line), reason)
        raise FastNSTError(f"{path} is not a {what} file torch can read ({reason[:120]})") \
            from None
