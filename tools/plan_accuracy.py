#!/usr/bin/env python3
"""How close `make all`'s projected time comes to the time its notebooks then take.

    python tools/plan_accuracy.py [--reports reports] [--out FILE] -- make all [VARIABLE=value ...]

Runs the command after ``--`` (its output passes through), times it, then reads the plan that `make
all` wrote before its first notebook (``<reports>/.plan.json``: each planned notebook's projected
seconds) and each executed notebook's own duration (papermill's, in the notebook's metadata). Prints
one JSON object and with ``--out`` writes it with its provenance (command, commit, hardware): per
notebook the projected and measured seconds and their ratio, and the totals (the notebooks' sum, and
the command's wall time, which adds the plan itself, installs and the final summary). A notebook of
the plan that did not run to its end (the command failed or was stopped) is listed, not summed.

Run it from the repository root with ``PYTHONPATH=$PWD`` on a machine with nothing else running: the
projection times a few steps of the machine as it is at the start.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def measured_seconds(notebook: Path, since: float) -> float | None:
    """Papermill's duration of an executed notebook written after ``since`` (None: not run since)."""
    if not notebook.is_file() or notebook.stat().st_mtime < since:
        return None
    try:
        meta = json.loads(notebook.read_text()).get("metadata", {}).get("papermill", {})
    except ValueError:
        return None
    if meta.get("exception") or meta.get("duration") is None:
        return None
    return float(meta["duration"])


def compare(reports: Path, since: float) -> dict:
    """Projected against measured seconds of the notebooks the plan in ``reports`` names."""
    plan = json.loads((reports / ".plan.json").read_text())
    rows, unfinished = {}, []
    for name in plan["notebooks"]:
        got = measured_seconds(reports / f"{name}.ipynb", since)
        if got is None:
            unfinished.append(name)
            continue
        projected = float(plan["projected"][name])
        rows[name] = {"projected_s": round(projected, 1), "measured_s": round(got, 1),
                      "measured_over_projected": round(got / projected, 3) if projected > 0 else None}
    projected = sum(r["projected_s"] for r in rows.values())
    measured = sum(r["measured_s"] for r in rows.values())
    return {"notebooks": rows, "not_finished": unfinished,
            "total": {"projected_s": round(projected, 1), "measured_s": round(measured, 1),
                      "measured_over_projected": round(measured / projected, 3) if projected > 0 else None}}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--" not in args or args.index("--") == len(args) - 1:
        print("usage: python tools/plan_accuracy.py [--reports DIR] [--out FILE] -- make all [...]", file=sys.stderr)
        return 2
    cut = args.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="the folder make all writes the notebooks and the plan into (default reports)")
    parser.add_argument("--out", help="write the comparison and its provenance here (JSON)")
    options, command = parser.parse_args(args[:cut]), args[cut + 1:]
    start = time.time()
    code = subprocess.call(command)
    wall = time.time() - start
    if not (options.reports / ".plan.json").is_file() or (options.reports / ".plan.json").stat().st_mtime < start:
        print(f"{options.reports}/.plan.json was not written by this command: nothing to compare", file=sys.stderr)
        return 2
    result = {"what": "make all's projected time (its plan, written before the first notebook) against the "
                      "duration papermill measured for each notebook it then executed",
              "exit_code": code, "wall_s": round(wall, 1), **compare(options.reports, start)}
    print(json.dumps(result, indent=1))
    if options.out:
        from n2n_core.provenance import provenance

        record = {**provenance(["python", "tools/plan_accuracy.py", *args]), **result}
        Path(options.out).write_text(json.dumps(record, indent=1) + "\n")
        print(f"Wrote {options.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
