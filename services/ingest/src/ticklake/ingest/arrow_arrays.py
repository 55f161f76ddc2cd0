"""numpy -> Arrow arrays through their buffers (zero-copy for numbers).

``pyarrow.array()`` asks pyarrow's pandas shim whether its input is a pandas
object, and that imports pandas when it is installed: ~40 MB of resident
memory and most of a second of start-up for a service that never uses it.
Building arrays from buffers skips the shim entirely.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def numeric(values: np.ndarray, type_: pa.DataType, missing: np.ndarray | None = None) -> pa.Array:
    """An Arrow array of ``type_`` over ``values`` (whose dtype must match ``type_``);
    rows where ``missing`` is true are null."""
    values = np.ascontiguousarray(values, dtype=type_.to_pandas_dtype())
    validity = None
    if missing is not None and missing.any():
        validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(values)])


def floats_nan_as_null(values: np.ndarray) -> pa.Array:
    """float64 with NaN as null (a missing quote, an undefined feature)."""
    return numeric(values, pa.float64(), np.isnan(values))


def booleans(values: np.ndarray) -> pa.Array:
    bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def strings(values: Sequence[str]) -> pa.Array:
    """A string array of ``values`` (UTF-8)."""
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def take_strings(dictionary: Sequence[str], codes: np.ndarray) -> pa.Array:
    """``dictionary[codes]`` as a string array (each distinct string encoded once)."""
    return strings(dictionary).take(numeric(codes.astype(np.int64), pa.int64()))


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-width column without nulls as numpy, read from its data buffer
    (``to_numpy`` itself goes through the pandas shim)."""
    if isinstance(column, pa.ChunkedArray):
        parts = [to_numpy(chunk) for chunk in column.chunks]
        if not parts:
            return np.zeros(0, dtype=column.type.to_pandas_dtype())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    if column.null_count:
        raise ValueError(f"column of {column.type} has {column.null_count} nulls")
    dtype = np.dtype(column.type.to_pandas_dtype())
    data = column.buffers()[1]
    return np.frombuffer(
        data, dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize
    )
