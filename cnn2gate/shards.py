"""A folder of .npy shards read as one batch, for input sets that do not fit in memory.

The shards are the folder's `*.npy` files in name order, each batch first, all with the
same sample shape. `ShardSet` opens them memory-mapped (only the headers are read up
front) and a slice `s[i:j]` reads just those samples, across shard boundaries, checked
and converted like any model input (`cnn2gate.batch.as_batch`, naming the shard). So the
chunks of a run over the folder are the chunks of a run over the concatenated array,
sample for sample, and the results are the same bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .batch import InternalBatch, as_batch
from .errors import Cnn2GateError


class ShardSet:
    """The samples of every shard of `folder`, in order, for `model` (a graph)."""

    def __init__(self, model, folder, what: str = "input"):
        self.model = model
        self.folder = Path(folder)
        self.what = what
        self.paths = list_shards(self.folder, what)
        self._arrays = [_open(p, what) for p in self.paths]
        first = self._arrays[0]
        for p, a in zip(self.paths, self._arrays):
            if a.ndim < 2:
                raise Cnn2GateError(f"{p}: {what} shard has shape {a.shape}; shards hold batches (samples first)")
            if a.shape[1:] != first.shape[1:]:
                raise Cnn2GateError(f"{p}: samples have shape {a.shape[1:]}, but {self.paths[0].name} has "
                                    f"{first.shape[1:]}: every shard of {self.folder} must hold samples of one shape")
            if not len(a):
                raise Cnn2GateError(f"{p}: {what} shard holds no samples")
        as_batch(model, first[:1], str(self.paths[0]), strict=False)  # the sample shape suits the model
        self.lengths = [len(a) for a in self._arrays]
        self.starts = np.cumsum([0] + self.lengths)

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple:
        return (len(self),) + tuple(self._arrays[0].shape[1:])

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("a ShardSet is read in slices (s[i:j])")
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise TypeError("a ShardSet is read in contiguous slices")
        pieces = []
        for k, (path, arr) in enumerate(zip(self.paths, self._arrays)):
            lo, hi = max(start, self.starts[k]), min(stop, self.starts[k + 1])
            if lo < hi:
                part = np.array(arr[lo - self.starts[k]:hi - self.starts[k]])  # read from disk now
                pieces.append(as_batch(self.model, part, str(path)))
        if not pieces:
            return np.empty((0,) + tuple(self.model.input_shape))
        out = np.concatenate([np.asarray(p) for p in pieces])
        # keep the "already channels-first" tag of a converted batch
        return out.view(InternalBatch) if isinstance(pieces[0], InternalBatch) else out


def list_shards(folder: Path, what: str = "input") -> list[Path]:
    """The .npy files of `folder`, in name order; anything else in it is an error naming it."""
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    for p in entries:
        if p.suffix != ".npy" or not p.is_file():
            raise Cnn2GateError(f"{p}: not a .npy file; a folder of {what} shards holds only .npy files (batch first)")
    if not entries:
        raise Cnn2GateError(f"{folder}: the {what} folder holds no .npy shards")
    return entries


def _open(path: Path, what: str) -> np.ndarray:
    """The shard memory-mapped: its header is read now, its samples when sliced."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        why = "not a .npy file (pickled Python objects are refused)" if "pickle" in str(err) else str(err)
        raise Cnn2GateError(f"{path}: cannot read {what} shard as a .npy array: {why}") from None
    if not np.issubdtype(arr.dtype, np.number):
        raise Cnn2GateError(f"{path}: {what} must be numeric, got dtype {arr.dtype}")
    return arr


__all__ = ["ShardSet", "list_shards"]
