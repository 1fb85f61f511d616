"""Where a result came from, recorded beside it: the commit of the code, the torch version, the
hardware, the command line and the date. ``reports/results.json`` carries it under "provenance", so
that a run's file can be checked in under ``docs/reference/`` as the source of the figures the docs
cite (docs/measuring.md)."""
from __future__ import annotations

import datetime
import shlex
import subprocess
import sys

import torch

from .training.devices import describe_cpu, describe_device
from .paths import PROJECT_ROOT


def git_commit(root=PROJECT_ROOT) -> str | None:
    """The commit checked out at ``root``, or None where there is no git or no repository."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def provenance(argv: list[str] | None = None) -> dict:
    """The commit, torch version, hardware (the CPU with its features, the GPU if any), command line
    (``argv``, by default this process's) and UTC date of a result, as a JSON-ready dict."""
    gpu = describe_device(torch.device("cuda", 0)) if torch.cuda.is_available() else None
    return {
        "commit": git_commit(),
        "torch": torch.__version__,
        "cpu": describe_cpu(),
        "gpu": gpu,
        "command": shlex.join(sys.argv if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
