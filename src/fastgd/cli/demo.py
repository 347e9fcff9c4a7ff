"""``fastgd demo``: the command-line face of `fastgd.demo.write_figures`."""
import argparse

from ..demo import DPI, write_figures

#: the errors of ``run`` that are the user's to fix, printed by ``fastgd demo`` as one line
USER_ERRORS = (ValueError, TypeError, ImportError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="figures", metavar="DIR",
                        help="directory for the PNG files (created if missing; default: figures)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="write only these figures (by file name without .png)")
    parser.add_argument("--dpi", type=int, default=DPI, help=f"resolution (default {DPI})")


def run(args: argparse.Namespace) -> int:
    if args.dpi < 20 or args.dpi > 600:
        raise ValueError(f"--dpi must be between 20 and 600, got {args.dpi}")
    write_figures(args.out, args.only, args.dpi)
    return 0
