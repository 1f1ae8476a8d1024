"""The IDX file format (MNIST, Fashion-MNIST): a strict reader and a writer.

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"), all integers
big-endian::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d >= 1
    4·d bytes   each dimension, uint32
    payload     prod(dims) elements, row-major (last index fastest)

Files may be gzip-compressed (detected by content, not by name). Every deviation (bad magic,
unknown type code, zero dimensions, short or overlong payload, broken gzip) raises ``UserError``
naming the file and what is wrong: a half-downloaded file must never load as data.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from initlab.data.cache import write_atomically
from initlab.errors import UserError

# type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str: code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"IDX file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read IDX file {str(path)!r}: {exc.strerror or exc}") from None


def _read_bytes(path: Path, raw: bytes | None = None) -> bytes:
    raw = _file_bytes(path) if raw is None else raw
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            # gzip raises EOFError on a truncated stream, BadGzipFile (an OSError) on bad headers
            raise UserError(f"IDX file {str(path)!r} is a broken gzip stream ({exc}); download it again") from None
    return raw


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian numpy array of its dims and type.

    Raises ``UserError`` naming the file when the magic number, the type code, the dimensions
    or the payload length (``prod(dims) × itemsize`` bytes, exactly) are wrong.

    >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
    (10000,)
    """
    return _decode(Path(path))


def _decode(path: Path, raw: bytes | None = None) -> np.ndarray:
    data = _read_bytes(path, raw)
    where = f"IDX file {str(path)!r}"
    if len(data) < 4:
        raise UserError(f"{where} is truncated: {len(data)} bytes, too short for the 4-byte magic number")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise UserError(
            f"{where} has a wrong magic number 0x{data[:4].hex()}: an IDX file starts with 0x0000 "
            "followed by a type code and the number of dimensions"
        )
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X} ({IDX_DTYPES[c].name})" for c in IDX_DTYPES)
        raise UserError(f"{where} has unknown element type code 0x{code:02X}; allowed: {allowed}")
    if ndim == 0:
        raise UserError(f"{where} declares 0 dimensions; an IDX array has at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise UserError(
            f"{where} is truncated: its header declares {ndim} dimensions ({header_len} bytes) "
            f"but the file has {len(data)} bytes"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise UserError(
            f"{where} is {what}: dims {tuple(dims)} of {dtype.name} need {expected} payload bytes, found {got}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx_cached(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> np.ndarray:
    """``read_idx`` through a cache of decoded arrays: ``cache_dir/idx/<sha256 of the file>.npy``.

    The key is the SHA-256 of the file's bytes as stored (gzip or raw), so an edited or replaced
    file never serves a stale array; hashing costs about 0.02 s per 26 MB where decompressing
    Fashion-MNIST's training images costs about 0.4 s. ``cache_dir`` None: no cache. A cache
    entry that cannot be read is decoded again and rewritten; one that cannot be written is
    skipped with a warning (the array is returned all the same).
    """
    path = Path(path)
    if cache_dir is None:
        return read_idx(path)
    raw = _file_bytes(path)
    entry = Path(cache_dir) / "idx" / f"{hashlib.sha256(raw).hexdigest()}.npy"
    try:
        return np.load(entry, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        pass  # absent or damaged: decode
    array = _decode(path, raw)
    try:
        write_atomically(entry, lambda fh: np.save(fh, array, allow_pickle=False))
    except OSError as exc:
        warnings.warn(f"could not cache {path.name} in {entry.parent}: {exc}; it will be decoded again", stacklevel=2)
    return array


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip when ``compress`` (default: when the name ends ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str
    if key not in _CODES:
        allowed = ", ".join(dt.name for dt in IDX_DTYPES.values())
        raise UserError(f"write_idx: dtype {array.dtype} has no IDX type code; allowed: {allowed}")
    if array.ndim == 0 or array.ndim > 255:
        raise UserError(f"write_idx: an IDX array has 1 to 255 dimensions; got {array.ndim}")
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    blob = header + payload
    if compress if compress is not None else path.name.endswith(".gz"):
        blob = gzip.compress(blob, mtime=0)  # mtime=0: same array, same bytes
    path.write_bytes(blob)
    return path
