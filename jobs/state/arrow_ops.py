"""Table operations the job needs that Arrow spells in several steps: the first row of each key, in an order;
a table in another schema."""

from __future__ import annotations

from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc


def first_of_each(table: pa.Table, key: str, order: Sequence[tuple[str, str]]) -> tuple[pa.Table, pa.Table]:
    """Sort ``table`` by ``key`` then ``order``; return (the first row of each key, the other rows)."""
    ordered = table.sort_by([(key, "ascending"), *order])
    keys = ordered.column(key).combine_chunks()
    if not len(keys):
        return ordered, ordered
    first = pc.fill_null(pc.not_equal(keys, pa.concat_arrays([pa.nulls(1, keys.type), keys[:-1]])), True)
    return ordered.filter(first), ordered.filter(pc.invert(first))


def flag(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A boolean column as 0/1, for sorting (nulls as 0)."""
    return pc.cast(pc.fill_null(values, False), pa.int8())


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: its columns in that order and those types, a column it lacks as nulls,
    one ``schema`` does not name dropped (parts of older runs lack newer nullable columns)."""
    return pa.Table.from_arrays([table.column(f.name).cast(f.type) if f.name in table.column_names
                                 else pa.nulls(table.num_rows, f.type) for f in schema], schema=schema)
