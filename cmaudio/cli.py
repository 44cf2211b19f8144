"""Shared command-line plumbing: an argparse parser whose errors are one line with exit status 2,
and a wrapper that turns the package's user-facing errors into the same."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .errors import UsageError

__all__ = ["Parser", "UsageError", "main_wrapper"]


class Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, description: str, epilog: str = ""):
        super().__init__(
            prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
        )

    def add_run_arguments(self) -> None:
        """The flags every training command shares: --set, --out, --resume, --dry-run, --no-progress."""
        self.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. run.steps=100 or data.root=data/tones (repeatable)",
        )
        self.add_argument("--out", default=None, help="run directory (default: runs/<name>)")
        self.add_argument("--resume", action="store_true", help="continue exactly from RUN_DIR/state.pt")
        self.add_argument("--dry-run", action="store_true", help="resolve and print the config, train nothing")
        self.add_argument("--no-progress", action="store_true", help="no progress bar")

    def error(self, message: str):  # argparse prints usage lines; one line is enough
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input (cmaudio.errors): one line and exit status 2, no traceback."""
    from . import errors

    return (
        errors.UsageError,
        errors.ConfigError,
        errors.CheckpointError,
        errors.AudioError,
        errors.DatasetError,
        errors.TrainingError,
        errors.VocoderError,
    )


def main_wrapper(prog: str, body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run a CLI body; a known user error becomes ``prog: error: message`` and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return body(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error already printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    except user_errors() as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
