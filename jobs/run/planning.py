"""Planning a run: freeze a new run's inputs and ``run.json`` (:meth:`RunFolder.create`), or read
them back on resume after checking that the settings would not change the transcripts; then
the rows still to do (ids already in ``data/`` are done, transient errors are tried again)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor import storage
from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.sampling import SEEDING
from asr_actor.schema import ID
from jobs.config import JobConfig, config_to_dict
from jobs.run.fingerprint import changed
from jobs.run.preflight import Checked
from jobs.run.versions import lock_state, versions
from jobs.state.run_folder import RunFolder
from jobs.store.manifest import read_manifest


class JobError(AsrBatchError):
    """The job itself cannot run or cannot finish (as opposed to one bad input, which is an error row)."""


@dataclass(frozen=True)
class Plan:
    folder: RunFolder
    run_id: str
    manifest: pa.Table  # the frozen manifest
    todo: pa.Table  # its rows not yet in data/ (or there as transient errors: tried again)
    done_before: pa.Array  # ids done before this attempt
    fingerprint: str  # the run's: stamped on every row it writes
    unchanged: int = 0  # an incremental run's inputs left out: their newest row stands


def _check_resumable(folder: RunFolder, checked: Checked) -> str:
    """The recorded fingerprint, unless this attempt would change what the transcripts are."""
    recorded = folder.record()
    before = recorded.get("fingerprint_inputs")
    if before is not None and before != checked.fingerprint_inputs:
        diff = "; ".join(changed(before, checked.fingerprint_inputs))
        raise JobError(
            f"{redact(folder.uri)}: resuming with these settings would change the transcripts ({diff}); "
            "resume without those --set keys, or start a new run"
        )
    return recorded.get("config_fingerprint") or checked.fingerprint


def _freeze(cfg: JobConfig, checked: Checked, folder: RunFolder) -> tuple[pa.Table, int]:
    """A new run's frozen inputs and run.json; return the manifest and how many inputs were unchanged."""
    from jobs.state.incremental import plan_incremental

    manifest = read_manifest(cfg.input, cfg.storage.store)
    record: dict[str, Any] = {
        "run_id": folder.uri.rsplit("/", 1)[-1], "started_at": datetime.now(timezone.utc).isoformat(),
        "input": redact(cfg.input), "config": config_to_dict(cfg), "model": checked.plan.record(),
        "config_fingerprint": checked.fingerprint, "fingerprint_inputs": checked.fingerprint_inputs,
        "versions": versions(), "lock": lock_state(), "sampling": SEEDING,
        "host": {"python": platform.python_version(), "machine": platform.machine()},
    }
    inc, unchanged, listing = cfg.incremental, 0, None
    try:
        if inc.enabled:
            chosen = plan_incremental(manifest, cfg.output, checked.fingerprint, inc.max_attempts, cfg.storage.store)
            manifest, unchanged, listing = chosen.todo, chosen.unchanged, chosen.listing
            record["incremental"] = {"unchanged": unchanged, "taken": chosen.reasons}
        folder.create(record, manifest, listing)
    except OSError as exc:
        raise JobError(f"{redact(folder.uri)}: cannot write the run folder ({type(exc).__name__}: {describe(exc)})") from exc
    return manifest, unchanged


def plan(cfg: JobConfig, checked: Checked, resume: bool) -> Plan:
    """Freeze (new run) or reload (resume) the run folder and pick the rows still to do."""
    run_id = cfg.run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = RunFolder(storage.join(cfg.output, run_id), cfg.storage.store)
    if resume:
        if not folder.exists():
            raise JobError(f"{redact(folder.uri)}: no run.json here, nothing to resume")
        fingerprint = _check_resumable(folder, checked)
        manifest = folder.read_manifest()
        unchanged = int(folder.record().get("incremental", {}).get("unchanged", 0))
    else:
        if folder.exists():
            raise JobError(f"{redact(folder.uri)}: run folder exists already; resume it or pick another --run-id")
        fingerprint = checked.fingerprint
        manifest, unchanged = _freeze(cfg, checked, folder)
    done = folder.done_ids()
    todo = manifest.filter(pc.invert(pc.is_in(manifest.column(ID), value_set=done))) if len(done) else manifest
    return Plan(folder, run_id, manifest, todo, done, fingerprint, unchanged)
