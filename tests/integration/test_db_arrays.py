"""Binary arrays read as numpy arrays (stream_mlops.db.arrays), against real Postgres."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import psycopg

from stream_mlops.db.arrays import MIN_ELEMENTS, register_numpy_arrays


def read(db_url: str, sql: str, binary: bool = True) -> Any:
    with psycopg.connect(db_url, autocommit=True) as conn:
        register_numpy_arrays(conn.adapters)
        row = conn.cursor(binary=binary).execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_numbers_arrive_as_numpy_arrays_with_every_value_exact(db_url: str) -> None:
    pad = MIN_ELEMENTS  # shorter arrays stay lists
    big = read(db_url, "SELECT ARRAY[-9223372036854775808, -1, 0, 7, 9223372036854775807]"
                       f"::int8[] || array_fill(3::int8, ARRAY[{pad}])")
    assert isinstance(big, np.ndarray) and big.dtype == np.int64
    assert big.tolist() == [-9223372036854775808, -1, 0, 7, 9223372036854775807] + [3] * pad
    small = read(db_url, "SELECT ARRAY[-2147483648, 0, 2147483647]::int4[]"
                         f" || array_fill(0, ARRAY[{pad}])")
    assert small.dtype == np.int32 and small[:3].tolist() == [-2147483648, 0, 2147483647]
    floats = read(db_url, "SELECT ARRAY[0.1, -2.5e300, 'Infinity', '-Infinity', 'NaN',"
                          f" 5e-324]::float8[] || array_fill(1.5::float8, ARRAY[{pad}])")
    assert floats.dtype == np.float64 and len(floats) == 6 + pad
    assert floats[:4].tolist() == [0.1, -2.5e300, math.inf, -math.inf]
    assert math.isnan(floats[4]) and floats[5] == 5e-324 and set(floats[6:]) == {1.5}
    flags = read(db_url, f"SELECT ARRAY[true, false] || array_fill(true, ARRAY[{pad}])")
    assert flags.dtype == np.bool_ and flags.tolist() == [True, False] + [True] * pad
    assert flags.flags.writeable and flags.flags.owndata  # not a view of the result


def test_short_empty_null_and_nested_arrays_and_text_results_stay_lists(db_url: str) -> None:
    assert read(db_url, f"SELECT array_fill(2::int8, ARRAY[{MIN_ELEMENTS - 1}])") == \
        [2] * (MIN_ELEMENTS - 1)
    assert read(db_url, "SELECT '{}'::int8[]") == []
    with_null = read(db_url, f"SELECT array_fill(1::int8, ARRAY[{MIN_ELEMENTS}]) || NULL::int8")
    assert with_null == [1] * MIN_ELEMENTS + [None]
    assert read(db_url, "SELECT ARRAY[[1.5, 2], [3, 4]]::float8[]") == [[1.5, 2.0], [3.0, 4.0]]
    assert read(db_url, f"SELECT array_fill(1::int8, ARRAY[{MIN_ELEMENTS}])",
                binary=False) == [1] * MIN_ELEMENTS
