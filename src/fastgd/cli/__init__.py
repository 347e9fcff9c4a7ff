"""The ``fastgd`` command (also ``python -m fastgd``): one sub-command per module.

Each sub-command module provides ``add_arguments(parser)`` and ``run(args) -> int``; errors a
user can fix (a missing file, bad columns, a missing optional package) are ``CLIError``, or
one of the exception classes the module lists in ``USER_ERRORS`` (`fastgd.demo`, a library
module, raises ordinary ``ValueError`` and ``ImportError`` and imports nothing from here),
and print as one line on stderr with exit status 2, never as a traceback.
"""
import argparse
import importlib
import sys
from types import ModuleType
from typing import Sequence

# sub-command -> (module, one-line help)
COMMANDS = {
    "train": ("fastgd.cli.train", "train an MLP (default: the bundled 8x8 digits) and report test accuracy"),
    "demo": ("fastgd.cli.demo", "write the figures of gradient descent's phenomena as PNG files"),
    "check": ("fastgd.cli.check", "check every native kernel against its numpy twin on this machine"),
    "config": ("fastgd.cli.config", "print the versions, CPU, kernel clone, BLAS and threads in use"),
}


class CLIError(Exception):
    """An error in the user's input, printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastgd", description="fast, clear gradient descent")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    for name, (module_name, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        modules[name] = importlib.import_module(module_name)
        modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = modules[args.command]
    try:
        return int(module.run(args) or 0)
    except (CLIError, *getattr(module, "USER_ERRORS", ())) as exc:
        print(f"fastgd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
