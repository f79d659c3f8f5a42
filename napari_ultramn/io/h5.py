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
        raise ValueError(f"compression must be one of {', '.join(map(str, COMPRESSIONS))}; "
                         f"got {compression!r}")
    if compression in ("zstd", "lz4"):
        load_h5py()
        import hdf5plugin

        # uint8 data: byte shuffling has nothing to reorder, so it is off
        level = 1 if compression == "zstd" else 5
        return dict(hdf5plugin.Blosc(cname=compression, clevel=level, shuffle=hdf5plugin.Blosc.NOSHUFFLE))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1}
    if compression == "lzf":
        return {"compression": "lzf"}
    return {}
