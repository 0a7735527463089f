"""The complete runs under an output root, and the newest row each of them left per id.

Runs are read one at a time and folded into a table of one row per id, so memory grows
with the number of distinct inputs, not with the number of nightly runs. Incremental
planning asks for the newest row of each id; ``export`` for the newest ok row, else the
newest error row.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.schema import ERROR, ID, TRANSCRIBED_AT
from jobs.state.arrow_ops import first_of_each, flag
from asr_actor.storage import Store
from jobs.state.run_folder import RunFolder, run_folders


@dataclass(frozen=True)
class PastRun:
    folder: RunFolder
    started_at: str  # ISO time from run.json: runs sort by it


def complete_runs(root: str, store: Store = Store()) -> list[PastRun]:
    """The run folders under ``root`` that have ``_SUCCESS``, oldest first."""
    return [PastRun(folder, str(record.get("started_at", ""))) for folder, record in run_folders(root, store)
            if folder.is_complete()]


def newest_rows(runs: list[PastRun], columns: list[str] | None = None, prefer_ok: bool = False) -> pa.Table | None:
    """One row per id over ``runs``: the newest (by ``transcribed_at``), or the newest ok one when ``prefer_ok``."""
    wanted = None if columns is None else sorted({*columns, ID, ERROR, TRANSCRIBED_AT})
    state: pa.Table | None = None
    for run in runs:
        rows = run.folder.read_all(wanted)
        if rows.num_rows == 0:
            continue
        state = newest_per_id(rows if state is None else pa.concat_tables([state, rows], promote_options="permissive"),
                              prefer_ok)
    return state


def newest_per_id(rows: pa.Table, prefer_ok: bool = False) -> pa.Table:
    """One row per id of ``rows``: the newest (by ``transcribed_at``), or the newest ok one when ``prefer_ok``."""
    order = [("__failed", "ascending")] if prefer_ok else []
    order.append((TRANSCRIBED_AT, "descending"))
    ranked = rows.append_column("__failed", flag(pc.is_valid(rows.column(ERROR))))
    return first_of_each(ranked, ID, order)[0].drop_columns(["__failed"])
