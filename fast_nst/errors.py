"""User-facing errors: one line that says what is wrong and what to do."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

F = TypeVar("F", bound=Callable)


class FastNSTError(Exception):
    """A mistake in the user's input. Entry points print it as one line, never a traceback."""


def exit_on_user_error(func: F) -> F:
    """Wrap an entry point so a FastNSTError becomes `error: ...` on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as err:
            user_error = find_user_error(err)
            if user_error is None:
                raise
            print(f"error: {user_error}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def find_user_error(err: BaseException | None) -> FastNSTError | None:
    """The FastNSTError behind `err`, also when a framework re-raised it `from` the original
    (Hydra's instantiate wraps constructor errors in an InstantiationException)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, FastNSTError):
            return err
        seen.add(id(err))
        err = err.__cause__
    return None


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are FastNSTErrors, so `exit_on_user_error` prints them as one
    line (argparse alone prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        raise FastNSTError(message)
