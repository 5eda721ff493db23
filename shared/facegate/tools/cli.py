"""The ``facegate`` command line: a thin front end.

Each group of subcommands lives in its own module exposing
``register(subparsers)``; handlers decode arguments, call one library
function, print the result and return an exit code. User errors
(:class:`facegate.core.errors.FacegateError`) print one line naming the file and
reason, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from facegate import __version__
from facegate.core.errors import FacegateError

Handler = Callable[[argparse.Namespace], int]

# Modules that add subcommands; each has ``register(subparsers) -> None`` and
# sets ``handler=`` via ``set_defaults`` on its parsers.
COMMAND_MODULES = (
    "facegate.tools.cli_engine",
    "facegate.tools.cli_evaluate",
    "facegate.training.cli",
    "facegate.tools.cli_pipeline",
    "facegate.tools.cli_camera",
    "facegate.tools.cli_stack",
    "facegate.tools.cli_operators",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facegate", description="Face-recognition door access (facegate)."
    )
    parser.add_argument("--version", action="version", version=f"facegate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # TensorFlow's C++ start-up chatter (oneDNN, CPU features) is noise here
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except FacegateError as exc:
        print(f"facegate: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facegate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
