"""User-facing errors: one line that says what is wrong and what to do."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

F = TypeVar("F", bound=Callable)

USER_ERROR_STATUS = 2
INTERRUPTED_STATUS = 130  # the shell's status for a process stopped by Ctrl-C (128 + SIGINT)


class FastNSTError(Exception):
    """A mistake in the user's input. Entry points print it as one line, never a traceback."""


class Interrupted(Exception):
    """Ctrl-C, with a line that says what was kept (e.g. where training can resume from)."""


def exit_on_user_error(func: F) -> F:
    """Wrap an entry point: a FastNSTError becomes `error: ...` on stderr and exit status 2;
    Ctrl-C becomes one `interrupted: ...` line and status 130 (finished outputs stay, as every
    output is written under a temporary name and renamed only when complete)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (KeyboardInterrupt, Interrupted) as err:
            detail = str(err) if isinstance(err, Interrupted) else "stopped by Ctrl-C"
            print(f"interrupted: {detail}; finished outputs are kept", file=sys.stderr)
            sys.exit(INTERRUPTED_STATUS)
        except Exception as err:
            user_error = find_user_error(err)
            if user_error is None:
                raise
            print(f"error: {one_line(str(user_error))}", file=sys.stderr)
            sys.exit(USER_ERROR_STATUS)

    return wrapper  # type: ignore[return-value]


def one_line(text: str) -> str:
    """Messages from libraries can span lines; the contract is one line."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


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
        raise FastNSTError(f"{message} (see {self.prog} --help)")
