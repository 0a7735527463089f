"""The job as a short recipe of named stages on Ray Data.

    preflight -> plan -> prepare (fetch, decode, windows + log-mel; CPU actors)
              -> transcribe (model actors) -> write (Parquet parts) -> finalize (deduplicate, _SUCCESS)

``preflight`` (:mod:`jobs.preflight`) resolves the model from its small files and
checks the config before anything is written. ``plan`` freezes the manifest and
``run.json`` on a new run, or reads them back on resume and drops the ids already in
``data/``. The driver only counts the small rows that the write stage returns,
printing progress as parts land. A failure of Ray itself becomes a :class:`JobError`
with the cause in one line; the run folder stays resumable.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.errors import AsrBatchError, redact
from asr_actor.schema import DURATION, FINGERPRINT, ID, MANIFEST_INPUT_COLUMNS, MODEL, RUN_ID, output_schema
from jobs import storage
from jobs.config import JobConfig, config_to_dict, load_config
from jobs.fingerprint import changed
from jobs.manifest import read_manifest
from jobs.preflight import Checked, preflight
from jobs.run_folder import RunFolder, summarize

MAX_INPUT_BLOCKS = 1024  # a run's input blocks: one per CPU-stage batch on small runs, bounded on huge ones
_VERSIONS = ("asr-batch", "torch", "transformers", "ray", "pyarrow", "av", "fsspec", "s3fs")


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


def _versions() -> dict[str, str | None]:
    out = {}
    for name in _VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _check_resumable(folder: RunFolder, checked: Checked) -> str:
    """The recorded fingerprint, unless this attempt would change what the transcripts are."""
    recorded = folder.read_json("run.json")
    before = recorded.get("fingerprint_inputs")
    if before is not None and before != checked.fingerprint_inputs:
        diff = "; ".join(changed(before, checked.fingerprint_inputs))
        raise JobError(
            f"{redact(folder.uri)}: resuming with these settings would change the transcripts ({diff}); "
            "resume without those --set keys, or start a new run"
        )
    return recorded.get("config_fingerprint") or checked.fingerprint


def plan(cfg: JobConfig, checked: Checked, resume: bool) -> Plan:
    """Freeze (new run) or reload (resume) the run folder and pick the rows still to do."""
    run_id = cfg.run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = RunFolder(storage.join(cfg.output, run_id), cfg.storage.retry_s)
    if resume:
        if not folder.exists():
            raise JobError(f"{redact(folder.uri)}: no run.json here, nothing to resume")
        fingerprint = _check_resumable(folder, checked)
        manifest = folder.read_manifest()
    else:
        if folder.exists():
            raise JobError(f"{redact(folder.uri)}: run folder exists already; resume it or pick another --run-id")
        manifest = read_manifest(cfg.input, cfg.storage.retry_s)
        fingerprint = checked.fingerprint
        folder.freeze_manifest(manifest)
        folder.write_json("run.json", {
            "run_id": run_id, "started_at": datetime.now(timezone.utc).isoformat(),
            "input": redact(cfg.input), "config": config_to_dict(cfg), "model": checked.plan.record(),
            "config_fingerprint": fingerprint, "fingerprint_inputs": checked.fingerprint_inputs,
            "versions": _versions(), "host": {"python": platform.python_version(), "machine": platform.machine()},
        })
    done = folder.done_ids()
    todo = manifest.filter(pc.invert(pc.is_in(manifest.column(ID), value_set=done))) if len(done) else manifest
    return Plan(folder, run_id, manifest, todo, done, fingerprint)


def _source(todo: pa.Table, batch_size: int):
    """The rows still to do, as blocks built in the driver: one CPU-stage batch per block
    (so several CPU workers share a small run), at most ``MAX_INPUT_BLOCKS`` blocks.

    Only the columns the stages read travel (pass-through columns are joined back by the
    writer), all strings, so ``from_items`` loses no type. It computes block metadata
    here; ``from_arrow`` runs a Ray task per block for it, which cost 1.5-3 s of a run's
    start on a warm local cluster (measured).
    """
    import ray

    columns = [c for c in MANIFEST_INPUT_COLUMNS if c in todo.column_names]
    rows = todo.select(columns).cast(pa.schema([(c, pa.string()) for c in columns])).to_pylist()
    per_block = max(batch_size, -(-len(rows) // MAX_INPUT_BLOCKS))
    return ray.data.from_items(rows, override_num_blocks=-(-len(rows) // per_block))


def _dataset(cfg: JobConfig, checked: Checked, p: Plan):
    from ray.data import ActorPoolStrategy, DataContext

    from jobs.workers import CpuWorker, ModelWorker, PartWriter

    ctx = DataContext.get_current()
    ctx.execution_no_progress_timeout_s = cfg.ray.no_progress_timeout_s
    ctx.enable_progress_bars = False
    st, log_mel = cfg.stages, checked.plan.log_mel
    ds = _source(p.todo, st.prepare.batch_size)
    ds = ds.map_batches(
        CpuWorker, batch_size=st.prepare.batch_size, batch_format="pyarrow",
        fn_constructor_kwargs={"audio": cfg.audio, "log_mel": log_mel, "chunked": cfg.decoding.long_form == "chunked",
                               "idle_priority": st.prepare.idle_priority, "retry_s": cfg.storage.retry_s},
        compute=ActorPoolStrategy(min_size=1, max_size=st.prepare.concurrency), num_cpus=st.prepare.num_cpus,
    )
    ds = ds.map_batches(
        ModelWorker, batch_size=st.transcribe.batch_size, batch_format="pyarrow",
        fn_constructor_kwargs={"transcriber_config": checked.transcriber_config(cfg), "log_mel": log_mel},
        compute=ActorPoolStrategy(min_size=st.transcribe.min_actors, max_size=st.transcribe.max_actors),
        num_gpus=st.transcribe.num_gpus or None, num_cpus=st.transcribe.num_cpus,
    )
    stamp = {MODEL: cfg.model.id, FINGERPRINT: p.fingerprint, RUN_ID: p.run_id}
    return ds.map_batches(
        PartWriter, batch_size=st.write.batch_size, batch_format="pyarrow",
        fn_constructor_kwargs={"run_uri": p.folder.uri, "schema": output_schema(p.manifest.schema), "stamp": stamp,
                               "retry_s": cfg.storage.retry_s},
        compute=ActorPoolStrategy(min_size=1, max_size=1), num_cpus=st.write.num_cpus,
    )


def _execute(cfg: JobConfig, checked: Checked, p: Plan) -> float:
    """Run the stages over ``p.todo``; return the audio seconds this attempt transcribed."""
    from jobs.ray_cluster import failure_cause, init_ray

    init_ray(cfg.ray)
    done, audio_s, total = p.manifest.num_rows - p.todo.num_rows, 0.0, p.manifest.num_rows
    try:
        for batch in _dataset(cfg, checked, p).iter_batches(batch_size=None, batch_format="numpy"):
            done += len(batch[ID])
            audio_s += float(sum(batch[DURATION]))
            print(f"progress: {done}/{total} files", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - Ray's failure, told in one line; the folder stays resumable
        raise JobError(f"the run stopped: {failure_cause(exc)}; "
                       f"fix the cause, then: asr-batch resume {redact(p.folder.uri)}") from exc
    return audio_s


def run_job(cfg: JobConfig, resume: bool = False) -> dict[str, Any]:
    """Preflight, then run (or resume) the job to completion; return the ``_SUCCESS`` figures."""
    started = time.perf_counter()
    checked = preflight(cfg)
    p = plan(cfg, checked, resume)
    total = p.manifest.num_rows
    print(f"run {redact(p.folder.uri)}: {total} files, {total - p.todo.num_rows} already done, "
          f"{p.todo.num_rows} to do", file=sys.stderr)
    audio_now = _execute(cfg, checked, p) if p.todo.num_rows else 0.0
    dropped = p.folder.deduplicate()
    counts = summarize(p.folder.keys(), p.done_before)
    missing = total - counts["rows"]
    if missing:
        raise JobError(f"{missing} manifest ids have no output row; resume the run to finish them")
    wall = time.perf_counter() - started
    summary = {
        **counts, "audio_hours": round(counts["audio_s"] / 3600, 4),
        "wall_s": round(wall, 2), "rtfx": round(audio_now / wall, 2) if wall else None,
        "duplicates_dropped": dropped, "output": redact(p.folder.uri),
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    p.folder.write_json("_SUCCESS", summary)
    return summary


def resume_config(run_uri: str, overrides: list[str]) -> JobConfig:
    """The config recorded in a run folder's ``run.json``, with ``--set`` overrides applied."""
    folder = RunFolder(run_uri.rstrip("/"))  # the recorded storage.retry_s is not known yet: the default
    if not folder.exists():
        raise JobError(f"{redact(folder.uri)}: no run.json here, nothing to resume")
    recorded = folder.read_json("run.json")["config"]
    recorded.update(output=storage.parent(folder.uri), run_id=folder.uri.rsplit("/", 1)[-1])
    return load_config(None, overrides, **recorded)
