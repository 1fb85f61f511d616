"""Every path of the project, derived from one root.

Environment overrides:
  N2N_DATA_DIR    a folder laid out like ``<dir>/kodak``, ``<dir>/train_pool`` (read only).
  N2N_OUTPUT_DIR  where data caches, checkpoints and reports are written (default: the repo root);
                  the tests point it at a temporary folder so they never touch a user's results.
"""
from __future__ import annotations

import errno
import os
import sys
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


# ------------------------------------------------------------------ the rule for every file a run writes
class OutputError(ValueError):
    """An output the tool will not write: the message names the path, the reason and what to do."""


_TEMPORARY_EXTRA = len(".{}.tmp".format(2 ** 22)) + 1  # what atomic_output and the lock add to a file name


def output_path(value: str | Path, flag: str = "--out") -> Path:
    """A user's output path as given on the command line: refused when empty, ``~`` expanded (a
    quoted ``~/x`` reaches the program unexpanded), and each name checked against the file
    system's limits before any work, rather than after hours of training."""
    text = str(value)
    if not text.strip():
        raise OutputError(f"{flag} is empty; give it a path")
    path = Path(os.path.expanduser(text))
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if _exists(p))
    name_max = _pathconf(existing, "PC_NAME_MAX", 255) - _TEMPORARY_EXTRA
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"{path}: the name {part[:24]}... is {len(os.fsencode(part))} bytes, more than this file "
                              f"system allows for a file written safely ({name_max}); choose a shorter {flag}")
    if len(os.fsencode(str(path.absolute()))) + _TEMPORARY_EXTRA >= _pathconf(existing, "PC_PATH_MAX", 4096):
        raise OutputError(f"{path}: the path is longer than this file system allows; choose a shorter {flag}")
    return path


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long to look up: not there
        return False


def _pathconf(path: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError, AttributeError):
        return default


def check_output(value: str | Path, *, inputs=(), overwrite: bool | None = False, flag: str = "--out") -> Path:
    """The one rule for a file the tool writes, checked before any work: never an input of the run
    nor inside an input folder (``inputs``: files and folders it reads), never a link or a folder,
    never replaced without ``overwrite`` (None: the caller decides what an existing file means, as
    resuming a training run does), and its folder writable. Returns the path (``output_path``)."""
    path = output_path(value, flag)
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; n2n never writes through links: remove it or choose another "
                          f"{flag}")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give {flag} a file path such as {path / ('out' + (path.suffix or '.pth'))}")
    target = path.absolute().resolve()
    for item in inputs:
        source = Path(item).expanduser().absolute().resolve()
        if target == source or (source.is_dir() and source in target.parents):
            where = "is" if target == source else f"lies inside {source}, which is"
            raise OutputError(f"{path}: {where} an input of this run; choose another {flag}")
    if overwrite is False and path.exists():
        raise OutputError(f"{path}: already exists; pass --overwrite to replace it or choose another {flag}")
    try:
        ensure_writable_dir(path.parent, flag)
    except ValueError as err:
        raise OutputError(str(err)) from None
    return path


def write_failure(err: OSError) -> str:
    """What to do about a write that failed, from its cause (said after the path and the reason)."""
    return {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (the disk quota is full)",
            errno.ENAMETOOLONG: "choose a shorter name", errno.EISDIR: "a folder is in the way: choose another name",
            errno.EACCES: "choose a folder you can write to", errno.EPERM: "choose a folder you can write to",
            errno.EROFS: "the file system is read-only: choose another folder"}.get(err.errno, "choose another place")


_HELD: dict[Path, int] = {}  # the outputs this process holds, and how many times (holding nests)


@contextmanager
def holding(path: str | Path, flag: str = "--out"):
    """Hold ``path`` (a file, or a folder a run writes into) for the block: a second run that asks
    for it meanwhile, in this process or another, gets an OutputError at once instead of both
    writing and one losing its work. An advisory lock on a hidden file beside it (inside it, for a
    folder), released by the system when the process ends however it ends."""
    path = Path(path)
    key = path.absolute()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    lock = key / ".n2n.lock" if key.is_dir() else key.with_name(f".{key.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(lock, path, flag)
    _HELD[key] = 1
    try:
        yield path
    finally:
        del _HELD[key]
        lock.unlink(missing_ok=True)
        os.close(fd)


def _lock(lock: Path, path: Path, flag: str) -> int:
    """An open descriptor of ``lock`` holding its exclusive lock (the file re-checked after locking, in
    case its holder removed it meanwhile)."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this system: concurrent runs are not detected
        return os.open(os.devnull, os.O_RDONLY)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise OutputError(f"{path}: another run (process {holder}) is writing it; wait for it to finish or choose "
                              f"another {flag}") from None
        if os.path.exists(lock) and os.stat(lock).st_ino == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)


def write_cache(path: str | Path, write) -> bool:
    """Write a cache file with ``write(temporary_path)`` (atomically, ``atomic_output``). A cache that
    cannot be written (a read-only or full disk) costs a recomputation later, never the result being
    computed: one warning per folder, and False."""
    try:
        with atomic_output(path) as tmp:
            write(tmp)
        return True
    except OSError as err:
        folder = Path(path).parent
        if folder not in _UNCACHED:
            _UNCACHED.add(folder)
            print(f"warning: {folder}: cannot write the cache here ({err.strerror or err}); results are computed but "
                  f"not kept for next time (set N2N_OUTPUT_DIR to a writable folder)", file=sys.stderr)
        return False


_UNCACHED: set[Path] = set()


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


# ------------------------------------------------------------------------------ the checkout
def checkout_of(folder: str | Path) -> Path | None:
    """The checkout that holds ``folder``: the nearest folder at or above it with both notebooks/
    and n2n_core/ in it; None outside any checkout."""
    folder = Path(folder).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "notebooks").is_dir() and (candidate / "n2n_core").is_dir():
            return candidate
    return None


def elsewhere_note(folder: str | Path | None = None) -> str:
    """One line when this n2n_core is imported from another folder than the checkout that holds
    ``folder`` (default: the working folder, where a notebook runs): the notebook would run that
    other copy's code, not the code beside it (an editable install made in another clone or
    worktree, say). Empty when they agree, or when ``folder`` is in no checkout."""
    checkout = checkout_of(Path.cwd() if folder is None else folder)
    if checkout is None or checkout == PROJECT_ROOT:
        return ""
    return (f"Note: n2n_core is imported from {PROJECT_ROOT}, not from this checkout ({checkout}): "
            f"its code runs, not the code here (`pip install -e {checkout}` or PYTHONPATH={checkout} changes that)")


def note_checkout(folder: str | Path | None = None) -> None:
    """Print ``elsewhere_note`` when there is something to say (the first cell of every notebook)."""
    note = elsewhere_note(folder)
    if note:
        print(note)
