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
from jobs.state.run_folder import RUN_JSON, SUCCESS, RunFolder, split_duplicates, summarize

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
    runs = []
    for sub in store.list_dirs(folder.uri):
        run = RunFolder(sub, store)
        if (sub_record := _json(run, RUN_JSON)) is not None:
            runs.append((str(sub_record.get("started_at", "")), run.uri, run, sub_record))
    if not runs:
        raise StatusError(f"{redact(uri)}: neither a run folder (no {RUN_JSON}) nor an output root holding run folders")
    lock = _root_lock(folder.uri, now, store)
    lines = [_root_line(run, rec, lock, now) for _, _, run, rec in sorted(runs, key=lambda r: r[:2])]
    return {"kind": "root", "uri": redact(folder.uri), "lock": lock, "runs": lines}


# --- the human form: a few aligned lines ---

def _when(iso: str | None) -> str:
    """An ISO time as ``2026-11-27 10:15:03Z`` (as it is when it does not parse)."""
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return iso


def _span(seconds: float) -> str:
    """``45 s``, ``12 min 5 s``, ``3.2 h``."""
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 2:
        return f"{round(seconds)} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def _holder(lock: dict[str, Any]) -> str:
    return f"{lock['host']} (pid {lock['pid']}), heartbeat {_span(max(lock['heartbeat_age_s'], 0))} ago"


def _lock_text(lock: dict[str, Any] | None) -> str:
    if lock is None:
        return "none"
    health = "live" if lock["live"] else f"stale: older than lock_ttl_s {lock['ttl_s']:g} s"
    return f"run {lock['run_id']} on {_holder(lock)} ({health})"


def _state_text(f: dict[str, Any]) -> str:
    if f["state"] == COMPLETE:
        return f"complete, finished {_when(f['finished_at'])}"
    if f["state"] == RUNNING:
        return f"running on {_holder(f['lock'])}"
    return f"incomplete (not running): {f['resume']} finishes it"


def _progress_lines(f: dict[str, Any]) -> list[tuple[str, str]]:
    """The last part; while running, the rate and the ETA."""
    lines = []
    if f["last_part_at"]:
        lines.append(("last part", f"{_when(f['last_part_at'])}, {_span(max(f['last_part_age_s'], 0))} ago"))
    if f["state"] == RUNNING:
        rate = f["rate"]
        lines.append(("rate", f"{rate['files_per_s']:.2f} files/s, RTFx {rate['rtfx']:g} (the last "
                      f"{_span(rate['window_s'])} of parts)" if rate else "not yet known (fewer than two parts)"))
        if f["eta_s"] is not None:
            lines.append(("eta", f"{_span(f['eta_s'])}, {_when(f['eta_at'])}"))
    return lines


def _error_lines(f: dict[str, Any]) -> list[tuple[str, str]]:
    width = max((len(str(e["count"])) for e in f["errors"]), default=0)
    lines = [("errors" if number == 0 else "", f"{e['count']:>{width}}  {e['cause']}  (e.g. id {e['example_id']})")
             for number, e in enumerate(f["errors"])]
    if f["error_causes"] > len(f["errors"]):
        lines.append(("", f"and {f['error_causes'] - len(f['errors'])} more causes"))
    return lines


def _run_lines(f: dict[str, Any]) -> list[tuple[str, str]]:
    failed = f"{f['failed']} failed" + (f" ({f['transient']} transient: resume retries them)" if f["transient"] else "")
    dup = f"; duplicates in data/: {f['duplicate_rows']} (counted once)" if f["duplicate_rows"] else ""
    return [("run", f"{f['run_id']}  {f['uri']}"), ("state", _state_text(f)), ("started", _when(f["started_at"])),
            ("files", f"{f['manifest_rows']} in the manifest: {f['ok']} ok, {failed}, {f['remaining']} remaining{dup}"),
            ("audio", f"{f['audio_hours']:.5g} h transcribed"), *_progress_lines(f), *_error_lines(f)]


def _root_lines(f: dict[str, Any]) -> list[str]:
    table = [("RUN", "STATE", "OK", "FAILED", "REMAINING", "STARTED", "FINISHED / LAST PART")]
    for r in f["runs"]:
        table.append((r["run_id"], r["state"], str(r["ok"]), str(r["failed"]), str(r["remaining"]),
                      _when(r["started_at"]), _when(r["finished_at"] or r["last_part_at"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    left = {0, 1, 5, 6}  # text columns; counts align right
    rows = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in table]
    return [f"{'root':<10} {f['uri']}", f"{'lock':<10} {_lock_text(f['lock'])}", *rows]


def format_status(figures: dict[str, Any]) -> str:
    """The figures of :func:`status` as a few aligned lines."""
    if figures["kind"] == "root":
        return "\n".join(_root_lines(figures))
    return "\n".join(f"{label:<10} {text}".rstrip() for label, text in _run_lines(figures))
