"""``asr-batch status`` without ``--json``: the figures of :func:`jobs.report.status.status` as a few aligned lines."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jobs.report.status import COMPLETE, RUNNING


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
