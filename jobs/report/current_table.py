"""The current table of runs as a Ray Data job, so that memory per process stays flat as a root grows.

Ray tasks read the runs' parts (a batch of parts each) and tag every row with its id's
range bucket: the bucket bounds come from a sample of the listing's ids, so buckets
hold about equal numbers of ids and follow each other in id order.
``groupby(bucket).map_groups`` brings all rows of one bucket together; there the newest
row per id is kept (:func:`jobs.state.history.newest_per_id`, an ok row over an error
row), ids gone from the listing are dropped, the rest is sorted by id and handed to the
caller's ``write`` (a Parquet part, one file per row…), still in the worker. No process
holds more than a bucket's rows; the driver holds the part names and a sample of ids.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asr_actor.schema import ID
from asr_actor.storage import Store
from jobs.state.arrow_ops import conform
from jobs.state.history import PastRun, newest_per_id
from jobs.state.run_folder import SUCCESS

if TYPE_CHECKING:
    import ray.data

# rows of all runs per bucket: what one worker holds at a time, ~5 KB each in Arrow (2 KB of text and
# 10 segments) and about three copies while it picks the newest (measured: ~0.9 GB at the peak)
BUCKET_ROWS = 20_000
READ_ROWS = 10_000  # rows read per reading task: parts are batched up to about this many
SAMPLES_PER_BUCKET = 64  # listing ids sampled per bucket to place the bounds
BUCKET = "__bucket"  # the working column: the row's bucket number
Writer = Callable[[pa.Table, int], "dict[str, Any] | pa.Table"]  # see current_table


@dataclass(frozen=True)
class Listing:
    """The ids still present: the newest run's listing file (``uri``), read through ``store``; None: keep every id."""

    uri: str | None
    store: Store

    def ids(self, lo: str | None = None, hi: str | None = None) -> pa.Array | None:
        """The listed ids in ``[lo, hi)`` (an open end where None); None when every id is kept."""
        if self.uri is None:
            return None
        test = pc.scalar(True)
        if lo is not None:
            test = pc.field(ID) >= lo
        if hi is not None:
            test = test & (pc.field(ID) < hi)
        return pq.read_table(io.BytesIO(self.store.read_bytes(self.uri)), columns=[ID], filters=test).column(ID)

    def sample(self, count: int) -> pa.Array:
        """About ``count`` listed ids spread over the listing, read a batch at a time."""
        listing = pq.ParquetFile(io.BytesIO(self.store.read_bytes(self.uri)))
        step = max(1, listing.metadata.num_rows // max(1, count))
        return pa.concat_arrays([batch.column(0)[::step] for batch in listing.iter_batches(step * 64, columns=[ID])]
                                or [pa.array([], pa.string())])


def total_rows(runs: list[PastRun]) -> int:
    """Rows over ``runs`` as their ``_SUCCESS`` counted them (0 where it has no count)."""
    return sum(int(run.folder.read_json(SUCCESS).get("rows", 0)) for run in runs)


def bucket_bounds(sample: pa.Array, buckets: int) -> list[str]:
    """At most ``buckets - 1`` increasing ids that cut ``sample`` (ids) into ``buckets`` about equal ranges."""
    ids = np.sort(np.asarray(sample.to_pylist(), dtype=object))
    return sorted({str(ids[len(ids) * b // buckets]) for b in range(1, buckets)} if len(ids) else set())


def _read_parts(batch: dict[str, np.ndarray], *, schema: pa.Schema, bounds: np.ndarray, store: Store) -> pa.Table:
    """The rows of a batch of parts, in ``schema`` (a column a part lacks is nulls), each with its bucket."""
    tables = []
    for uri in batch["part"]:
        tables.append(conform(pq.read_table(io.BytesIO(store.read_bytes(str(uri)))), schema))
    rows = pa.concat_tables(tables)
    ids = np.asarray(rows.column(ID).to_pylist(), dtype=object)
    return rows.append_column(BUCKET, pa.array(np.searchsorted(bounds, ids, side="right").astype(np.int32)))


def _bucket(rows: pa.Table, *, bounds: list[str], listing: Listing, write: Writer) -> pa.Table:
    """One bucket's rows: the newest per id, of the ids still listed, sorted by id, to ``write``; what it gives."""
    number = rows.column(BUCKET)[0].as_py()
    rows = newest_per_id(rows.drop_columns([BUCKET]), prefer_ok=True)
    present = listing.ids(bounds[number - 1] if number else None, bounds[number] if number < len(bounds) else None)
    if present is not None:
        rows = rows.filter(pc.is_in(rows.column(ID), value_set=present.combine_chunks()))
    out = write(rows, number)  # newest_per_id sorted them by id
    return out if isinstance(out, pa.Table) else pa.table({key: [value] for key, value in out.items()})


def schema_of(runs: list[PastRun]) -> pa.Schema:
    """The columns of every run's rows: each run's first part's, unified (older runs lack newer nullable columns)."""
    schemas = []
    for run in runs:
        parts = run.folder.parts()
        if parts:
            schemas.append(pq.read_schema(io.BytesIO(run.folder.store.read_bytes(parts[0]))))
    return pa.unify_schemas(schemas, promote_options="permissive")


def current_table(runs: list[PastRun], listing: Listing, schema: pa.Schema, write: Writer,
                  store: Store = Store()) -> "ray.data.Dataset | None":
    """The newest row per id over ``runs`` (for the ids ``listing`` keeps), in ``schema`` (:func:`schema_of`),
    bucket by bucket through ``write``: a lazy dataset of what ``write`` gives, None when the runs have no parts.

    ``write(rows, bucket_number)`` runs in a Ray worker, once per bucket that has rows, and
    returns its figures (a flat dict: a row of the dataset) or rows to pass on. Ray must be initialized.
    """
    import ray.data
    from ray.data.context import ShuffleStrategy

    parts = [part for run in runs for part in run.folder.parts()]
    if not parts:
        return None
    rows = max(1, total_rows(runs))
    buckets = max(1, math.ceil(rows / BUCKET_ROWS))
    samples = buckets * SAMPLES_PER_BUCKET
    bounds = bucket_bounds(listing.sample(samples) if listing.uri else _sample_ids(parts, samples, store), buckets)
    ds = ray.data.from_items([{"part": p} for p in parts])
    # The pull-based sort shuffle moves rows through the object store (which spills to disk), so a
    # worker holds one partition at a time; a hash shuffle's aggregators hold all of theirs at once.
    ds.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    ds = ds.map_batches(_read_parts, batch_size=max(1, READ_ROWS * len(parts) // rows), batch_format="numpy",
                        fn_kwargs={"schema": schema, "bounds": np.asarray(bounds, dtype=object), "store": store})
    return ds.groupby(BUCKET, num_partitions=len(bounds) + 1).map_groups(
        _bucket, batch_format="pyarrow", fn_kwargs={"bounds": bounds, "listing": listing, "write": write})


def _sample_ids(parts: list[str], count: int, store: Store) -> pa.Array:
    """Without a listing (one run's rows): about ``count`` ids from parts spread over all of them."""
    chosen = parts[:: max(1, len(parts) // SAMPLES_PER_BUCKET)]
    per_part = max(1, count // len(chosen))
    return pa.concat_arrays([_spread(pq.read_table(io.BytesIO(store.read_bytes(p)), columns=[ID]).column(ID), per_part)
                             for p in chosen])


def _spread(ids: pa.ChunkedArray, count: int) -> pa.Array:
    return ids.combine_chunks()[:: max(1, len(ids) // count)]
