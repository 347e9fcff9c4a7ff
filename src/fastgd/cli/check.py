"""``fastgd check``: every native kernel against its numpy twin on this machine
(`fastgd.selfcheck`), one line per kernel; exit status 1 on a mismatch."""
import argparse

from .. import selfcheck


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--failures-only", action="store_true",
                        help="print only the kernels that disagree with their numpy twin")


def run(args: argparse.Namespace) -> int:
    results = selfcheck.run(log=None)
    for r in results:
        if not (args.failures_only and r.ok):
            print(r.line())
    bad = [r for r in results if not r.ok]
    print(f"{len(results) - len(bad)} of {len(results)} kernels agree with their numpy twin"
          + (f"; {len(bad)} do not: please report this with the output above" if bad else ""))
    return 1 if bad else 0
