"""One door to HDF5: every file we open can use the compression filters we write.

Frames and masks are compressed with Blosc (Zstandard or LZ4), an HDF5 filter that h5py does not
ship; ``hdf5plugin`` (maintained by the silx/ESRF team, used across synchrotron and microscopy
data) registers it with HDF5 when imported. Opening our files through :func:`load_h5py` makes
that import impossible to forget; a reader outside this package needs ``import hdf5plugin``
before ``h5py.File`` (the dataset card says so), or a file written with ``compression="gzip"``.

Why Blosc-Zstd by default (``benchmarks/bench_dataset.py``; B-mode speckle, 256x256 frames):
it writes ~7x faster than h5py's lzf and ~9x faster than gzip level 1, reads ~4x faster than
gzip, and is as small as gzip (~0.77x raw), where lzf saves nothing on speckle (~1.0x).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

from ..errors import output_error

COMPRESSIONS = ("zstd", "lz4", "gzip", "lzf", None)
"""Frame compressions: ``zstd`` (Blosc-Zstd level 1, default: fast and small), ``lz4``
(Blosc-LZ4: fastest, barely shrinks speckle), ``gzip`` (level 1: readable by any HDF5 tool without
a plugin, slowest), ``lzf`` (h5py's own filter), ``None`` (uncompressed)."""


def load_h5py():
    """``h5py``, with the Blosc filters registered (import ``hdf5plugin`` once per process)."""
    import h5py
    import hdf5plugin  # noqa: F401  (registers the filters with the HDF5 library on import)

    return h5py


def compression_kwargs(compression: str | None) -> dict:
    """``create_dataset`` keyword arguments for one of :data:`COMPRESSIONS`."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(map(str, COMPRESSIONS))}; got {compression!r}")
    if compression in ("zstd", "lz4"):
        load_h5py()
        import hdf5plugin

        # uint8 data: byte shuffling has nothing to reorder, so it is off
        level = 1 if compression == "zstd" else 5
        return dict(
            hdf5plugin.Blosc(
                cname=compression,  # type: ignore[arg-type]  # a checked name
                clevel=level,
                shuffle=hdf5plugin.Blosc.NOSHUFFLE,
            )
        )
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1}
    if compression == "lzf":
        return {"compression": "lzf"}
    return {}


class _WriteGuard:
    """The file an HDF5 file we create is written through (h5py's ``fileobj`` driver).

    Why: when a write fails (disk full, quota, I/O error) HDF5 keeps the data it could not write
    in its caches, cannot close the file, leaves it open in the library, and the library's own
    shutdown then crashes the interpreter (a segfault after pages of "Can't close dataset").
    Here a failed write is recorded instead of reported to HDF5, and what HDF5 writes after it is
    held in memory (reads see it, so HDF5 stays consistent), so the file always closes cleanly;
    the writer then raises one :class:`~napari_ultramn.errors.OutputError` and removes the file.
    Writers stop early by calling :func:`check_writes` (memory holds only what was written after
    the failure until then).
    """

    def __init__(self, path: Path, shown: str | Path):
        self.path, self.shown = path, shown  # shown: the name the user knows (not a temporary's)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self.pos = 0
        self.error: OSError | None = None
        self.held: dict[int, bytes] = {}  # offset -> bytes written after the failure

    def __repr__(self) -> str:  # h5py shows this as ``File.filename``; check_writes looks it up
        return f"<ultramn output {self.path} #{id(self)}>"

    def size(self) -> int:
        ends = [off + len(b) for off, b in self.held.items()]
        return max([os.fstat(self.fd).st_size, *ends])

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset + (0 if whence == 0 else self.pos if whence == 1 else self.size())
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size() - self.pos))
        data = bytearray(os.pread(self.fd, n, self.pos).ljust(n, b"\0"))
        for off, held in self.held.items():  # in write order, so later writes win
            lo, hi = max(off, self.pos), min(off + len(held), self.pos + n)
            if lo < hi:
                data[lo - self.pos : hi - self.pos] = held[lo - off : hi - off]
        view[:n] = data
        self.pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        buf = bytearray(max(0, self.size() - self.pos) if n is None or n < 0 else n)
        return bytes(buf[: self.readinto(buf)])

    def write(self, buf) -> int:
        data = memoryview(buf).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(data):
                    done += os.pwrite(self.fd, data[done:], self.pos + done)
            except OSError as exc:
                self.error = exc
        if self.error is not None:
            self.held[self.pos] = bytes(data)
        self.pos += len(data)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self.error = exc
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        os.close(self.fd)


_GUARDS: weakref.WeakValueDictionary[str, _WriteGuard] = weakref.WeakValueDictionary()


def check_writes(h5obj) -> None:
    """Raise :class:`OutputError` if a write into the file of ``h5obj`` (a file, group or dataset
    made by :func:`create_h5`) has failed; long writers call it between frames to stop early."""
    guard = _GUARDS.get(h5obj.file.filename)
    if guard is not None and guard.error is not None:
        raise output_error(guard.error, guard.shown)


@contextlib.contextmanager
def create_h5(path: str | Path, *, shown: str | Path | None = None) -> Iterator:
    """A new HDF5 file at ``path`` (``h5py.File``, mode "w"), closed at the end of the block.

    Any failed write (full disk, quota, I/O error, no permission) ends in one
    :class:`~napari_ultramn.errors.OutputError` naming ``shown`` (default ``path``; e.g. the
    final name when ``path`` is a temporary one), raised after the file was closed cleanly, and
    the file is removed. Not atomic by itself: see :func:`napari_ultramn.io.hdf5clip.write_hdf5_clip`.
    """
    h5py = load_h5py()
    path = Path(path)
    shown = path if shown is None else shown
    try:
        guard = _WriteGuard(path, shown)
    except OSError as exc:
        raise output_error(exc, shown) from None
    _GUARDS[repr(guard)] = guard
    failed = True
    try:
        with h5py.File(guard, "w") as fh:
            yield fh
        failed = guard.error is not None
    finally:
        guard.close()
        if failed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if guard.error is not None:  # the root cause, whatever the block raised after it
            raise output_error(guard.error, shown) from None
