"""Every path of the project, derived from one root.

Environment overrides:
  N2N_DATA_DIR    a folder laid out like ``<dir>/kodak``, ``<dir>/train_pool`` (read only).
  N2N_OUTPUT_DIR  where data caches, checkpoints and reports are written (default: the repo root);
                  the tests point it at a temporary folder so they never touch a user's results.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def output_root() -> Path:
    return Path(os.environ.get("N2N_OUTPUT_DIR") or PROJECT_ROOT)


def data_cache_dir() -> Path:
    """Downloads and prepared patch sets (``data/``, never committed)."""
    return output_root() / "data"


def bm3d_cache_dir() -> Path:
    """Cached BM3D results (``data/cache/bm3d/``), keyed by the noisy image."""
    return data_cache_dir() / "cache" / "bm3d"


def eval_cache_dir() -> Path:
    """Cached evaluations of trained models (``data/cache/eval/``), keyed by weights and protocol."""
    return data_cache_dir() / "cache" / "eval"


@contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by the suffix pick the
    same format); when the block ends without an error it replaces ``path`` in one rename, so a
    reader never sees half a file and a crash leaves the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_writable_dir(folder: str | Path, flag: str = "--out") -> Path:
    """Create ``folder`` if needed and check, before any work, that files can be written in it. A
    ValueError names the folder and what to do (``flag`` is the option that sets it)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".n2n_write_test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{folder}: cannot write to this folder ({err.strerror or err}); choose another "
                         f"{flag}") from None
    return folder


def ensure_writable_file(path: str | Path, flag: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be written: not a folder, its folder created and
    writable. A ValueError names the path and what to do (``flag`` is the option that sets it)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give {flag} a file path such as {path / 'model.pth'}")
    ensure_writable_dir(path.parent, flag)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (``atomic_output``)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def checkpoint_dir() -> Path:
    return output_root() / "checkpoints"


def pretrained_dir() -> Path:
    """The shipped weights (``checkpoints/pretrained/``, committed): part of the code, so never
    under N2N_OUTPUT_DIR."""
    return PROJECT_ROOT / "checkpoints" / "pretrained"


def report_dir() -> Path:
    return output_root() / "reports"


def user_data_dir() -> Path | None:
    value = os.environ.get("N2N_DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


DEFAULT_PROFILE = "cpu"  # its runs sit at the top of checkpoints/ and reports/, the others in a folder each


def profile_subdir(base: Path, profile: str) -> Path:
    return base if profile == DEFAULT_PROFILE else base / profile


def checkpoint_path(profile: str, name: str) -> Path:
    """The checkpoint of the run ``name`` of ``profile``, e.g. checkpoints/unet_n2n_gaussian.pth."""
    return profile_subdir(checkpoint_dir(), profile) / f"{name}.pth"


def report_path(profile: str, filename: str) -> Path:
    """A report file of ``profile`` (its folder created)."""
    path = profile_subdir(report_dir(), profile) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
