"""Binary arrays read as numpy arrays (stream_mlops.db.arrays), against real Postgres."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import psycopg

from stream_mlops.db.arrays import register_numpy_arrays


def read(db_url: str, sql: str, binary: bool = True) -> Any:
    with psycopg.connect(db_url, autocommit=True) as conn:
        register_numpy_arrays(conn.adapters)
        row = conn.cursor(binary=binary).execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_numbers_arrive_as_numpy_arrays_with_every_value_exact(db_url: str) -> None:
    big = read(db_url, "SELECT ARRAY[-9223372036854775808, -1, 0, 7, 9223372036854775807]::int8[]")
    assert big.dtype == np.int64
    assert big.tolist() == [-9223372036854775808, -1, 0, 7, 9223372036854775807]
    small = read(db_url, "SELECT ARRAY[-2147483648, 0, 2147483647]::int4[]")
    assert small.dtype == np.int32 and small.tolist() == [-2147483648, 0, 2147483647]
    floats = read(db_url, "SELECT ARRAY[0.1, -2.5e300, 'Infinity', '-Infinity', 'NaN',"
                          " 5e-324]::float8[]")
    assert floats.dtype == np.float64
    assert floats[:4].tolist() == [0.1, -2.5e300, math.inf, -math.inf]
    assert math.isnan(floats[4]) and floats[5] == 5e-324
    flags = read(db_url, "SELECT ARRAY[true, false, true]")
    assert flags.dtype == np.bool_ and flags.tolist() == [True, False, True]
    assert flags.flags.writeable and flags.flags.owndata  # not a view of the result


def test_empty_arrays_are_empty_numpy_arrays(db_url: str) -> None:
    empty = read(db_url, "SELECT '{}'::int8[]")
    assert isinstance(empty, np.ndarray) and empty.dtype == np.int64 and len(empty) == 0


def test_nulls_and_matrices_fall_back_to_lists_and_text_results_are_untouched(
        db_url: str) -> None:
    assert read(db_url, "SELECT ARRAY[1, NULL, 3]::int8[]") == [1, None, 3]
    assert read(db_url, "SELECT ARRAY[[1.5, 2], [3, 4]]::float8[]") == [[1.5, 2.0], [3.0, 4.0]]
    assert read(db_url, "SELECT ARRAY[1, 2]::int8[]", binary=False) == [1, 2]
