"""User-facing errors: one line that says what is wrong and what to do."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class FastNSTError(Exception):
    """A mistake in the user's input. Entry points print it as one line, never a traceback."""


def exit_on_user_error(func: F) -> F:
    """Wrap an entry point so a FastNSTError becomes `error: ...` on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FastNSTError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
