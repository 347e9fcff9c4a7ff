"""``fastgd config``: `fastgd.show_config` (versions, CPU, kernel clone, BLAS, threads), or
the same as JSON with ``--json``."""
import argparse
import json

from .._config import config, show_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the values as JSON")


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(config(), indent=2))
    else:
        show_config()
    return 0
