"""Binary Postgres arrays of fixed-width numbers read straight into numpy arrays.

psycopg reads a ``bigint[]`` as a list of Python ints, one object per element, which the
consumer then turns back into a numpy array: for a 50,000-row batch of 18 such columns
that is ~900,000 objects and ~25 ms of CPU holding the GIL. A binary array of a fixed
width type without NULLs is a header and then, per element, its length (4 bytes) and its
value (big-endian), so numpy can read it in place.

Only binary results are affected (text results keep psycopg's loaders), and an array
with NULLs or more than one dimension falls back to psycopg's own loader (a list).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import adapt, postgres, pq
from psycopg.abc import AdaptContext, Buffer

_HEADER = np.dtype([("ndim", ">i4"), ("has_null", ">i4"), ("element_oid", ">i4")])
_HEADER_BYTES = _HEADER.itemsize + 8  # one dimension: its size and lower bound
# Postgres type -> (big-endian element dtype, the numpy dtype handed out)
_TYPES: dict[str, tuple[str, type[np.generic]]] = {
    "int8": (">i8", np.int64), "int4": (">i4", np.int32), "float8": (">f8", np.float64),
    "bool": ("u1", np.bool_),
}


def _loader(wire: str, native: type[np.generic], array_oid: int) -> type[adapt.Loader]:
    item = np.dtype([("length", ">i4"), ("value", wire)])

    class NumpyArrayLoader(adapt.Loader):
        format = pq.Format.BINARY

        def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
            super().__init__(oid, context)
            fallback = postgres.adapters.get_loader(array_oid, pq.Format.BINARY)
            assert fallback is not None
            self._fallback = fallback(oid, context)

        def load(self, data: Buffer) -> Any:
            ndim, has_null, _ = np.frombuffer(data, _HEADER, 1)[0]
            if ndim == 0:
                return np.empty(0, native)
            if ndim != 1 or has_null:
                return self._fallback.load(data)
            n = int(np.frombuffer(data, ">i4", 1, _HEADER.itemsize)[0])
            return np.frombuffer(data, item, n, _HEADER_BYTES)["value"].astype(native)

    return NumpyArrayLoader


def register_numpy_arrays(adapters: adapt.AdaptersMap) -> None:
    """Binary ``bigint[]``, ``integer[]``, ``double precision[]`` and ``boolean[]``
    results load as 1-d numpy arrays (where they hold no NULL)."""
    for name, (wire, native) in _TYPES.items():
        info = postgres.types.get(name)
        assert info is not None
        adapters.register_loader(info.array_oid, _loader(wire, native, info.array_oid))
