"""``asr-batch status RUN_OR_ROOT``: how far a run is, from its folder alone (no Ray, any fsspec URL).

A run folder (it has ``run.json``) is ``complete`` (``_SUCCESS`` is there), ``running``
(the output root's ``_LOCK`` names this run and its heartbeat is younger than the run's
recorded ``lock_ttl_s``) or ``incomplete`` (killed or failed: ``asr-batch resume``
finishes it). Rows are counted per distinct id, the row :meth:`RunFolder.deduplicate`
would keep of an id written twice. Only the manifest's ids and the parts' id, error,
error kind, duration and ``transcribed_at`` are read, never transcripts or audio.

``--json`` keys of a run (``kind: "run"``): ``run_id``, ``uri``, ``state``, ``resume``
(the command that finishes an incomplete run, else null), ``started_at``,
``finished_at``, ``last_part_at`` (newest ``transcribed_at``), ``last_part_age_s``,
``manifest_rows``, ``ok``, ``failed`` = ``transient`` + ``permanent``, ``remaining``
(manifest ids with no row yet), ``duplicate_rows`` (extra copies in ``data/``, not
counted), ``audio_hours``, ``rate`` (while running: ``files_per_s``, ``rtfx``,
``window_s``, ``files``; else null), ``eta_s`` and ``eta_at`` (``remaining`` at that
rate), ``lock`` (the root's lock: ``run_id``, ``host``, ``pid``, ``heartbeat_age_s``,
``ttl_s``, ``live``; or null), ``errors`` (top causes: ``cause``, ``count``,
``example_id``) and ``error_causes`` (how many distinct causes). Of an output root
(``kind: "root"``): ``uri``, ``lock`` and ``runs``, oldest first, each with ``run_id``,
``state``, ``ok``, ``failed``, ``remaining``, ``started_at``, ``finished_at`` and
``last_part_at`` (a complete run's counts come from its ``_SUCCESS``: its parts are not
read and ``last_part_at`` is null).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import DURATION, ID, TRANSCRIBED_AT
from asr_actor import storage
from jobs.report.error_causes import top_causes
from jobs.state.lock import owner_dead_here, read_lock
from asr_actor.storage import Store
from jobs.state.run_folder import RUN_JSON, SUCCESS, RunFolder, run_folders, split_duplicates, summarize

COMPLETE, RUNNING, INCOMPLETE = "complete", "running", "incomplete"
RATE_WINDOW_S = 600.0  # s: the rate is measured over the parts written this long before the newest one


class StatusError(AsrBatchError):
    """Neither a run folder nor an output root of runs, or a run file that is not JSON."""


@dataclass(frozen=True)
class RunFacts:
    """What one run's folder and its root's lock hold: the input of :func:`run_figures`."""

    uri: str
    record: dict[str, Any]  # run.json
    manifest_ids: pa.ChunkedArray
    keys: pa.Table  # RunFolder.keys with transcribed_at: every row in data/, duplicates included
    success: dict[str, Any] | None  # _SUCCESS, None while the run is not complete
    lock: dict[str, Any] | None  # lock_figures of the root's lock


def _json(folder: RunFolder, name: str) -> dict[str, Any] | None:
    try:
        return folder.read_json(name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as exc:
        raise StatusError(f"{redact(folder.path(name))}: not a JSON file ({describe(exc)})") from exc


def _ttl_s(record: dict[str, Any]) -> float:
    """The run's recorded ``lock_ttl_s``; the config's default for a run that recorded none."""
    from jobs.config import JobConfig

    default = next(f.default for f in dataclasses.fields(JobConfig) if f.name == "lock_ttl_s")
    return float((record.get("config") or {}).get("lock_ttl_s", default))


def lock_figures(held: dict[str, Any] | None, ttl_s: float, now: datetime) -> dict[str, Any] | None:
    """The lock record's owner and age (its token is not shown); ``live``: younger than ``ttl_s`` and, when
    its owner ran on this machine, that process still exists (a job killed here left its lock behind)."""
    if held is None:
        return None
    age = now.timestamp() - float(held.get("heartbeat", 0))
    return {"run_id": held.get("run_id"), "host": held.get("host"), "pid": held.get("pid"),
            "heartbeat_age_s": round(age, 1), "ttl_s": ttl_s, "live": age < ttl_s and not owner_dead_here(held)}


def _root_lock(root: str, now: datetime, store: Store) -> dict[str, Any] | None:
    held = read_lock(root, store)
    if held is None:
        return None
    holder = _json(RunFolder(storage.join(root, str(held.get("run_id"))), store), RUN_JSON) or {}
    return lock_figures(held, _ttl_s(holder), now)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _rate(kept: pa.Table) -> dict[str, Any] | None:
    """Files and audio per second over the parts of the last ``RATE_WINDOW_S`` before the newest.

    Every row of a part has the part's time, so the rows of the window's first part were made
    before it: they are left out, and at least two parts are needed.
    """
    times = kept.column(TRANSCRIBED_AT)
    newest = pc.max(times).as_py()
    if newest is None:
        return None
    recent = kept.filter(pc.greater_equal(times, pa.scalar(newest - timedelta(seconds=RATE_WINDOW_S), times.type)))
    first = pc.min(recent.column(TRANSCRIBED_AT))
    span = (newest - first.as_py()).total_seconds()
    if span <= 0:
        return None
    after = recent.filter(pc.greater(recent.column(TRANSCRIBED_AT), first))
    audio_s = pc.sum(after.column(DURATION)).as_py() or 0.0
    return {"files_per_s": round(after.num_rows / span, 3), "rtfx": round(audio_s / span, 2),
            "window_s": round(span, 1), "files": after.num_rows}


def _state(facts: RunFacts, run_id: str) -> str:
    if facts.success is not None:
        return COMPLETE
    lock = facts.lock
    return RUNNING if lock is not None and lock["run_id"] == run_id and lock["live"] else INCOMPLETE


def run_figures(facts: RunFacts, now: datetime) -> dict[str, Any]:
    """The figures of one run (see the module's docstring for the keys); reads nothing."""
    run_id = str(facts.record.get("run_id") or facts.uri.rsplit("/", 1)[-1])
    kept, _ = split_duplicates(facts.keys)
    counts = summarize(kept, pa.array([], pa.string()))
    done = kept.column(ID).combine_chunks()
    remaining = int(pc.sum(pc.cast(pc.invert(pc.is_in(facts.manifest_ids, value_set=done)), pa.int64())).as_py() or 0)
    state = _state(facts, run_id)
    newest = pc.max(kept.column(TRANSCRIBED_AT)).as_py()
    rate = _rate(kept) if state == RUNNING else None
    eta_s = round(remaining * rate["window_s"] / rate["files"], 1) if rate else None
    stale = facts.lock is not None and not facts.lock["live"]
    errors, n_causes = top_causes(kept)
    return {
        "kind": "run", "run_id": run_id, "uri": redact(facts.uri), "state": state,
        "resume": f"asr-batch resume {redact(facts.uri)}{' --break-lock' if stale else ''}" if state == INCOMPLETE else None,
        "started_at": facts.record.get("started_at"), "finished_at": (facts.success or {}).get("finished_at"),
        "last_part_at": _iso(newest), "last_part_age_s": round((now - newest).total_seconds(), 1) if newest else None,
        "manifest_rows": len(facts.manifest_ids), "ok": counts["run_ok"], "failed": counts["run_failed"],
        "transient": counts["transient"], "permanent": counts["run_failed"] - counts["transient"],
        "remaining": remaining, "duplicate_rows": facts.keys.num_rows - kept.num_rows,
        "audio_hours": round(counts["audio_s"] / 3600, 4), "rate": rate, "eta_s": eta_s,
        "eta_at": _iso(now + timedelta(seconds=eta_s)) if eta_s is not None else None,
        "lock": facts.lock, "errors": errors, "error_causes": n_causes,
    }


def read_run(folder: RunFolder, record: dict[str, Any], lock: dict[str, Any] | None) -> RunFacts:
    """Read what :func:`run_figures` needs of ``folder`` (its ``run.json`` is ``record``)."""
    return RunFacts(folder.uri, record, folder.read_manifest([ID]).column(ID),
                    folder.keys(extra=[TRANSCRIBED_AT]), _json(folder, SUCCESS), lock)


_LINE_KEYS = ("run_id", "state", "ok", "failed", "remaining", "started_at", "finished_at", "last_part_at")


def _root_line(folder: RunFolder, record: dict[str, Any], lock: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """One run of a root: a complete run from its ``_SUCCESS`` counts, any other from its parts."""
    success = _json(folder, SUCCESS)
    if success is not None and "run_ok" in success and "run_failed" in success:
        return {"run_id": str(record.get("run_id") or folder.uri.rsplit("/", 1)[-1]), "state": COMPLETE,
                "ok": success["run_ok"], "failed": success["run_failed"], "remaining": 0,
                "started_at": record.get("started_at"), "finished_at": success.get("finished_at"), "last_part_at": None}
    figures = run_figures(read_run(folder, record, lock), now)
    return {k: figures[k] for k in _LINE_KEYS}


def status(uri: str, now: datetime | None = None, store: Store = Store()) -> dict[str, Any]:
    """The figures of a run folder (``kind: "run"``) or of an output root holding runs (``kind: "root"``)."""
    now = now or datetime.now(timezone.utc)
    folder = RunFolder(uri, store)
    record = _json(folder, RUN_JSON)
    if record is not None:
        return run_figures(read_run(folder, record, _root_lock(storage.parent(folder.uri), now, store)), now)
    runs = run_folders(folder.uri, store)
    if not runs:
        raise StatusError(f"{redact(uri)}: neither a run folder (no {RUN_JSON}) nor an output root holding run folders")
    lock = _root_lock(folder.uri, now, store)
    lines = [_root_line(run, record, lock, now) for run, record in runs]
    return {"kind": "root", "uri": redact(folder.uri), "lock": lock, "runs": lines}
