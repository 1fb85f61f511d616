"""Command line: ``python -m n2n_core summary [--profile cpu]`` prints the results table of a run."""
from __future__ import annotations

import argparse
import sys

from . import experiment
from .config import PROFILES, get_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m n2n_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="print the PSNR table of reports/results.json")
    summary.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    args = parser.parse_args(argv)

    if args.command == "summary":
        profile = get_profile(args.profile)
        results = experiment.read_results(profile)
        if not results:
            print(f"no results for the {profile.name} profile yet: run `make all`", file=sys.stderr)
            return 1
        print(experiment.summary_table(profile), end="")
        comparable = all(r.get("comparable_with_paper", True) for run in results["runs"].values()
                         for r in run.values() if isinstance(r, dict))
        if not comparable:
            print("NOTE: measured on scikit-image's embedded photographs (offline default), NOT comparable "
                  "with the paper. Set N2N_DATA_DIR to a folder with train_pool/ and kodak/ for comparable numbers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
