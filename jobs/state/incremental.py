"""``--incremental``: which inputs a nightly run takes, judged against the complete runs under its output root.

Each input (by id) is compared with the newest row the earlier runs left for it:

- ``new``: no earlier row;
- ``changed``: its source differs (URI, size or ETag/mtime) from the one that row was made from;
- ``model``: that row is ok but has another ``config_fingerprint``;
- ``retry``: that row is an error made fewer than ``incremental.max_attempts`` times;

anything else is unchanged and skipped. The taken rows carry ``reason`` and ``attempt``
into the frozen manifest (and so onto their output rows), with the source's size and
ETag: for a prefix the listing has them; for a manifest file ``jobs/store/source_info.py``
reads them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.schema import ATTEMPT, ERROR, ETAG, FINGERPRINT, ID, REASON, SIZE, URI
from asr_actor.storage import Store
from jobs.state.history import complete_runs, newest_rows
from jobs.store.source_info import with_source_info

NEW, CHANGED, MODEL, RETRY = "new", "changed", "model", "retry"
_PAST = (ID, URI, ERROR, FINGERPRINT, SIZE, ETAG, ATTEMPT)  # what planning reads of earlier rows


@dataclass(frozen=True)
class Selection:
    todo: pa.Table  # the inputs to take, with REASON and ATTEMPT
    listing: pa.Table  # every input seen: id, uri, size, etag
    unchanged: int  # inputs skipped: their newest row stands
    reasons: dict[str, int]  # how many were taken for each reason


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    """Equal, or unknown on either side (a run that did not record it)."""
    equal = pc.fill_null(pc.equal(a, b), True)
    return np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool)


def select(manifest: pa.Table, past: pa.Table | None, fingerprint: str, max_attempts: int) -> Selection:
    """Decide, for every input of ``manifest``, whether this run takes it and why."""
    listing = manifest.select([c for c in (ID, URI, SIZE, ETAG) if c in manifest.column_names])
    n = manifest.num_rows
    if past is None or past.num_rows == 0:
        reasons = np.full(n, NEW, dtype=object)
        attempts = np.ones(n, dtype=np.int32)
    else:
        p = past.select([c for c in _PAST if c in past.column_names])
        p = p.rename_columns([c if c == ID else f"past_{c}" for c in p.column_names])
        joined = manifest.select([ID, URI, SIZE, ETAG]).join(p, ID, join_type="left outer")
        order = pc.index_in(manifest.column(ID), value_set=joined.column(ID).combine_chunks())
        joined = joined.take(order)  # back in the manifest's order
        def col(name: str, like: str | None = None) -> pa.ChunkedArray | pa.Array:
            if name in joined.column_names:
                return joined.column(name)
            return pa.nulls(n, joined.column(like).type if like else pa.string())  # an older run did not record it

        seen = np.asarray(pc.is_valid(col(f"past_{URI}")).to_numpy(zero_copy_only=False), dtype=bool)
        same_source = (_same(col(URI), col(f"past_{URI}")) & _same(col(SIZE), col(f"past_{SIZE}", SIZE))
                       & _same(col(ETAG), col(f"past_{ETAG}", ETAG)))
        failed = np.asarray(pc.is_valid(col(f"past_{ERROR}")).to_numpy(zero_copy_only=False), dtype=bool)
        same_model = np.asarray(pc.fill_null(pc.equal(col(f"past_{FINGERPRINT}"), fingerprint), False)
                                .to_numpy(zero_copy_only=False), dtype=bool)
        tried = np.asarray(pc.fill_null(pc.cast(col(f"past_{ATTEMPT}"), pa.int32()), 1).to_numpy(zero_copy_only=False))
        reasons = np.select(
            [~seen, ~same_source, ~failed & ~same_model, failed & (tried < max_attempts)],
            [NEW, CHANGED, MODEL, RETRY], default="",
        ).astype(object)
        attempts = np.where(reasons == RETRY, tried + 1, 1).astype(np.int32)
    taken = reasons != ""
    todo = manifest.filter(pa.array(taken))
    todo = todo.append_column(REASON, pa.array(reasons[taken], pa.string()))
    todo = todo.append_column(ATTEMPT, pa.array(attempts[taken], pa.int32()))
    counts = {r: int((reasons == r).sum()) for r in (NEW, CHANGED, MODEL, RETRY)}
    return Selection(todo, listing, int((~taken).sum()), counts)


def plan_incremental(manifest: pa.Table, root: str, fingerprint: str, max_attempts: int, store: Store) -> Selection:
    """Source info for every input, the newest earlier row per id under ``root``, and the selection."""
    manifest = with_source_info(manifest, store)
    past = newest_rows(complete_runs(root, store), list(_PAST))
    return select(manifest, past, fingerprint, max_attempts)
