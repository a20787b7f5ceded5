"""Outputs that appear complete or not at all.

Every command that writes a file or a folder goes through here, so a full disk, a
read-only location or an interrupted run never leaves a half-written output or stray
temporary files behind, and an existing output survives a failed replacement.

    write_file_atomic(path, data)          # bytes, str, or a callable writing to a binary file
    replace_file(path, data)               # the same step, raising the plain OSError
    replace_dir_atomic(tmp_dir, out_dir)   # move a finished temporary folder into place

Failures raise `OutputError` naming the output path (`replace_file` leaves the message
to its caller).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Union

from .errors import Cnn2GateError, OutputError

Data = Union[bytes, str, Callable]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _why(err: OSError) -> str:
    return err.strerror or str(err)


def write_file_atomic(path, data: Data, what: str = "output", *, mode: int | None = None,
                      sync: bool = False) -> Path:
    """Write `data` to `path` through a temporary sibling and one rename.

    data: bytes, text (UTF-8) or a callable that writes to the open binary file.
    mode: permission bits before the umask (default 0o666; 0o777 for an executable).
    sync: flush the content to disk before the rename.
    An existing `path` stays as it was unless the whole new content is on disk.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: cannot write {what}: is a directory")
    _check_parent(parent, path, what)
    try:
        return replace_file(path, data, mode=mode, sync=sync)
    except OSError as err:
        raise OutputError(f"{path}: cannot write {what}: {_why(err)}") from None


def replace_file(path, data: Data, *, mode: int | None = None, sync: bool = False) -> Path:
    """The write-then-rename step of `write_file_atomic`, without its checks and messages.

    The parent folder must exist. On any failure the temporary file is removed and the
    error (an OSError for the file system's refusals) propagates unchanged.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        # mkstemp makes the file private; give it an ordinary file's mode
        os.chmod(tmp, (0o666 if mode is None else mode) & ~_umask())
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return path


def _unlink(p) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def make_temp_dir(out_dir, what: str = "output folder") -> Path:
    """A fresh temporary folder next to `out_dir` (same file system, so the final rename is atomic)."""
    out_dir = Path(out_dir)
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    _check_parent(parent, out_dir, what)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as err:
        raise OutputError(f"cannot create {what} {out_dir}: {_why(err)}") from None


def write_dir_atomic(out_dir, fill: Callable[[Path], None], *, force: bool, what: str = "output folder") -> Path:
    """Build a folder with fill(tmp) in a temporary sibling, then move it to `out_dir`.

    An existing `out_dir` is an error without force. OS errors while filling become
    OutputError naming `out_dir` (not the temporary folder); any failure leaves nothing.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise OutputError(f"{out_dir} exists; use --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder")
    tmp = make_temp_dir(out_dir, what)
    try:
        try:
            fill(tmp)
        except Cnn2GateError as err:  # name the output the user asked for, not the temporary folder
            raise type(err)(str(err).replace(str(tmp), str(out_dir))) from None
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {out_dir}: {_why(err)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return replace_dir_atomic(tmp, out_dir, force=force, what=what)


def _check_parent(parent: Path, out: Path, what: str) -> None:
    """A file where a folder of the output path should be gets a message that says so."""
    for p in (parent, *parent.parents):
        if p.exists():
            if not p.is_dir():
                raise OutputError(f"cannot create {what} {out}: {p} is a file, not a folder")
            return


def replace_dir_atomic(tmp_dir, out_dir, *, force: bool, what: str = "output folder") -> Path:
    """Move the finished folder `tmp_dir` to `out_dir`.

    An existing `out_dir` is replaced only with force=True, and is put back if the
    replacement fails. On any failure `tmp_dir` is removed and nothing else is left.
    """
    tmp_dir, out_dir = Path(tmp_dir), Path(out_dir)
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    old_holder = None
    moved_old = False
    try:
        if out_dir.exists() or out_dir.is_symlink():
            if not force:
                raise OutputError(f"{out_dir} exists; use --force to replace it")
            if not out_dir.is_dir():
                raise OutputError(f"{out_dir} exists and is not a folder")
            old_holder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
            os.rename(out_dir, old_holder / "old")
            moved_old = True
        os.rename(tmp_dir, out_dir)
    except BaseException as err:
        if moved_old:
            try:
                os.rename(old_holder / "old", out_dir)
                moved_old = False
            except OSError:
                pass
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if old_holder is not None and not moved_old:
            shutil.rmtree(old_holder, ignore_errors=True)
        if isinstance(err, OSError):
            hint = f" (the previous content is kept in {old_holder / 'old'})" if moved_old else ""
            raise OutputError(f"cannot write {what} {out_dir}: {_why(err)}{hint}") from None
        raise
    if old_holder is not None:
        shutil.rmtree(old_holder, ignore_errors=True)
    return out_dir
