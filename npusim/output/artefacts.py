"""Writing a run's artefacts safely. The output directory holds only npusim artefacts, never an input of the
run (its program or config) and never lies in the configs or the package; it is locked for the run (a second
run into it is refused); every artefact is written into a staging directory beside it, and the whole set is
renamed into place in one step at the end (an atomic exchange of the two directories), so a reader sees the
old set or the new one, never a mix, and an error, Ctrl-C or SIGTERM leaves the old set as it was."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydantic import BaseModel

from npusim.errors import NpusimError, shown

ARTEFACTS = frozenset({
    "report.json", "timeline.png", "utilisation.png", "trace.json", "inputs.npz", "outputs.npz",
    "compare.json", "compare.png",
    "kernels.csv", "instructions.csv", "lines.csv", "kernels.png", "trace.json.gz",
    "sweep.csv", "sweep.json", "sweep.png", "tune.json",
})
STAGE_PREFIX = ".npusim-stage-"
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")
MAX_COMPONENT = 200  # characters of a report directory's name (file systems allow 255 bytes)

committed: list[Path] = []  # the main artefact of every set this process has put in place (for the Ctrl-C line)


def safe_component(name: str) -> str:
    """`name` as one portable path component: letters, digits and `_ . = + -`, not starting with '.' or '-'
    (so never '.', '..' or an option), any other character made '_', and cut in the middle to MAX_COMPONENT
    characters (its end, a run key, kept), so a name can never climb out of reports/ nor be too long."""
    cleaned = re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)
    if not _COMPONENT.fullmatch(cleaned):
        cleaned = "_" + cleaned
    if len(cleaned) > MAX_COMPONENT:
        cleaned = cleaned[: MAX_COMPONENT - 20] + "_" + cleaned[-19:]
    return cleaned


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _real(path: Path) -> Path:
    """The path with every symlink resolved (a symlink loop stays as it is, never an exception)."""
    return Path(os.path.realpath(os.path.expanduser(path)))


class OutputDir:
    """The output directory of one run: checked and locked on entering, written through a staging directory,
    its new set put in place by `commit`. Leaving it without a commit removes the staging directory (the old
    artefacts stay); leaving it releases the lock."""

    def __init__(self, out: Path, inputs: list[Path], protected: list[Path]) -> None:
        self.shown = out  # as the user wrote it, for messages
        self.inputs = inputs
        self.protected = protected
        self.path = _real(out)  # a symlinked --out is replaced at its target
        self.stage: Path | None = None
        self._fds: list[int] = []

    # -- checks ---------------------------------------------------------------------------------------------
    def _refuse(self, why: str) -> NpusimError:
        text = str(self.shown)
        return NpusimError(f"--out {text if text.isprintable() and len(text) <= 120 else shown(text, 120)}: {why}")

    def _check_place(self) -> None:
        for p in self.protected:
            p = _real(p)
            if _inside(self.path, p) or _inside(p, self.path):
                raise self._refuse(f"refusing to write reports next to or inside {p}")
        for f in self.inputs:
            f = _real(f)
            if _inside(f, self.path):
                raise self._refuse(f"refusing to write where an input of this run is ({f}); choose another "
                                   "directory")
        if _inside(_real(Path.cwd()), self.path):
            raise self._refuse("refusing to replace the current directory (or one holding it); choose a directory "
                               "below it")

    def _check_contents(self) -> None:
        foreign = sorted(f.name for f in self.path.iterdir() if not (
            f.is_file() and not f.is_symlink() and (f.name in ARTEFACTS or f.name.startswith(".npusim-"))))
        if foreign:
            names = ", ".join(shown(n, 40) for n in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise self._refuse(f"the directory holds files that are not npusim reports ({names}); choose an empty "
                               "or new directory")

    # -- the lock -------------------------------------------------------------------------------------------
    def _lock(self, path: Path) -> None:
        """An exclusive advisory lock on a directory (flock on its descriptor), refused if another run holds
        it; retried if the directory was replaced between opening and locking it."""
        for _ in range(100):
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse("another npusim run is writing into it; wait for it to finish or choose "
                                   "another --out") from None
            now, held = os.stat(path), os.fstat(fd)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                self._fds.append(fd)
                return
            os.close(fd)  # a run committed in between: lock the directory that is there now
        raise self._refuse("the directory keeps being replaced by other runs")

    # -- the life cycle -------------------------------------------------------------------------------------
    def __enter__(self) -> OutputDir:
        self._check_place()
        try:
            if self.path.exists() and not self.path.is_dir():
                raise self._refuse("exists and is not a directory")
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock(self.path)
            self._check_contents()
            _remove_stale_stages(self.path.parent)
        except OSError as exc:
            self.close()
            raise self._refuse(f"cannot create or open it: {exc.strerror}") from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def staging(self) -> Path:
        """A new, empty staging directory beside the output directory (the same file system, so the set can
        be renamed into place), locked like it."""
        if self.stage is None:
            try:
                self.stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=self.path.parent))
                self._lock(self.stage)
            except OSError as exc:
                raise self._refuse(f"cannot create a staging directory beside it: {exc.strerror}") from None
        return self.stage

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """The staging directory to write the artefacts into; a failure to write names the file by where it
        was going (the output directory), not by the staging directory."""
        stage = self.staging()
        try:
            yield stage
        except NpusimError as exc:
            exc.message = exc.message.replace(str(stage), str(self.shown))
            raise

    def commit(self, main: str) -> None:
        """Put the staged set in place in one step (signals held meanwhile) and remove the old set."""
        stage = self.staging()
        mode = self.path.stat().st_mode & 0o7777
        with _signals_held():
            self._check_contents()  # under the lock: nothing foreign arrived while the run ran
            os.chmod(stage, mode)
            _exchange(stage, self.path)
            committed.append(self.shown / main)
        old, self.stage = stage, None
        if not _remove_set(old):
            print(f"npusim: note: the replaced reports are kept in {old} (it holds other files)", file=sys.stderr)

    def close(self) -> None:
        if self.stage is not None:
            _remove_set(self.stage, everything=True)
            self.stage = None
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (delivered right after it), so the commit and its
    record happen together or not at all."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _renameat2() -> Callable[..., int] | None:
    """The C library's renameat2, from the process's own symbols (as npusim.interp.heap finds mallopt):
    ctypes.util.find_library imports subprocess and runs `ldconfig -p` in a child process, ~9 ms of every
    command's start-up in a slow hour."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "renameat2", None)


_RENAMEAT2 = _renameat2()


def _exchange(new: Path, target: Path) -> None:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE). Where the system or the file system
    cannot, the old directory is moved aside and the new one renamed in (a moment with neither)."""
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    parked = new.with_name(new.name + "-old")
    os.rename(target, parked)
    os.rename(new, target)
    os.rename(parked, new)  # as after an exchange: `new` holds the old set


STALE_AFTER_S = 600.0  # a staging directory this old that no run holds was left by a killed run (kill -9)


def _remove_stale_stages(parent: Path) -> None:
    """Remove staging directories beside the output directory that a run killed outright left behind: old, and
    not locked by any run."""
    for stage in parent.glob(f"{STAGE_PREFIX}*"):
        try:
            if not stage.is_dir() or time.time() - stage.stat().st_mtime < STALE_AFTER_S:
                continue
            fd = os.open(stage, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a run is writing it
        else:
            _remove_set(stage, everything=True)
        finally:
            os.close(fd)


def _remove_set(directory: Path, everything: bool = False) -> bool:
    """Remove a staging directory or a replaced set: only npusim artefacts and temporary files are deleted, so
    a file that is neither survives (and keeps the directory). Whether the directory is gone."""
    try:
        for f in directory.iterdir():
            ours = f.name in ARTEFACTS or f.name.startswith(".npusim-")
            if f.is_file() and not f.is_symlink() and (everything or ours):
                f.unlink()
        directory.rmdir()
    except OSError:
        return False
    return True


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file in the same directory, then rename over `path`. A failure of the
    machine (a full disk, a lost permission) is one located error."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".npusim-", suffix=".tmp")
    except OSError as exc:
        raise NpusimError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; reports are ordinary files
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NpusimError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """JSON of plain data or of a typed model (its JSON-mode dump), atomically."""
    text = json_bytes(data)
    write_atomic(path, lambda fh: fh.write(text))


def json_bytes(data: Any) -> bytes:
    """The bytes write_json writes: computed first, so a value JSON cannot hold fails before any file."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return json.dumps(data, indent=2, allow_nan=False).encode() + b"\n"


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """BF16 and FP16 stored as uint16 bit patterns, the FP8 formats as uint8 bit patterns, FP32 and the integer
    types as themselves (docs/sources.md DESIGN §7)."""
    stored = {}
    for name, a in arrays.items():
        if a.dtype.itemsize == 2:
            stored[name] = a.view(np.uint16)
        elif a.dtype.itemsize == 1 and a.dtype.kind != "i":
            stored[name] = a.view(np.uint8)
        else:
            stored[name] = a
    write_atomic(path, lambda fh: np.savez(fh, **stored))
