"""The job as a short recipe of named stages on Ray Data.

    preflight -> plan -> prepare (fetch, decode, windows + log-mel; CPU actors)
              -> transcribe (model actors) -> write (Parquet parts) -> finalize (deduplicate, _SUCCESS)

``preflight`` (:mod:`jobs.run.preflight`) resolves the model from its small files and
checks the config before anything is written. ``plan`` freezes the manifest and
``run.json`` on a new run, or reads them back on resume and drops the ids already in
``data/``. The driver only counts the small rows that the write stage returns and the
windows the model actors report (:mod:`jobs.run.progress`), and shows progress on stderr. A failure of Ray itself becomes a :class:`JobError`
with the cause in one line; the run folder stays resumable.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.dummy import label
from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import DURATION, ERROR, FINGERPRINT, ID, MODEL, RUN_ID, STAGE_INPUT_COLUMNS, output_schema
from asr_actor import storage
from jobs.config import JobConfig, StagesConfig, config_to_dict, load_config
from jobs.run.fingerprint import changed
from jobs.store.manifest import read_manifest
from jobs.run.preflight import Checked, preflight
from jobs.run.progress import Progress, TallyReader, WindowTally
from jobs.state.run_folder import SUCCESS, RunFolder, summarize
from jobs.run.versions import lock_state, versions

MAX_INPUT_BLOCKS = 1024  # a run's input blocks: one per CPU-stage batch on small runs, bounded on huge ones


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
    recorded = folder.read_json("run.json")
    before = recorded.get("fingerprint_inputs")
    if before is not None and before != checked.fingerprint_inputs:
        diff = "; ".join(changed(before, checked.fingerprint_inputs))
        raise JobError(
            f"{redact(folder.uri)}: resuming with these settings would change the transcripts ({diff}); "
            "resume without those --set keys, or start a new run"
        )
    return recorded.get("config_fingerprint") or checked.fingerprint


def _check_output_root(output: str) -> None:
    """A local output root must be a folder (made here if missing); an object store is checked by writing."""
    if not storage.is_local(output):
        return
    _, path = storage.fs_and_path(output)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise JobError(f"--output {output}: cannot hold run folders ({type(exc).__name__}: {describe(exc)})") from exc


def _check_shared_paths(cfg: JobConfig, verbose: bool) -> None:
    """On a cluster of several nodes, a plain local path is seen by one node only: refuse it.

    ``file:///…`` says the folder is one every node mounts (NFS, a shared disk) and is taken.
    """
    from jobs.run.ray_cluster import alive_nodes, cluster_address, init_ray

    if cluster_address(cfg.ray) is None:
        return  # a local cluster: one node
    init_ray(cfg.ray, verbose)
    nodes = alive_nodes()
    for flag, uri in (("--input", cfg.input), ("--output", cfg.output)):
        if nodes > 1 and "://" not in uri:
            raise JobError(f"{flag} {uri} is a path on this node, and the cluster has {nodes} nodes: give a store every "
                           f"node reaches (s3://…, gs://…), or file://{uri} if every node mounts that folder")


def _freeze(cfg: JobConfig, checked: Checked, folder: RunFolder) -> tuple[pa.Table, int]:
    """A new run's frozen inputs and run.json; return the manifest and how many inputs were unchanged."""
    from jobs.state.incremental import plan_incremental

    manifest = read_manifest(cfg.input, cfg.storage.store)
    record: dict[str, Any] = {
        "run_id": folder.uri.rsplit("/", 1)[-1], "started_at": datetime.now(timezone.utc).isoformat(),
        "input": redact(cfg.input), "config": config_to_dict(cfg), "model": checked.plan.record(),
        "config_fingerprint": checked.fingerprint, "fingerprint_inputs": checked.fingerprint_inputs,
        "versions": versions(), "lock": lock_state(),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
    }
    inc, unchanged = cfg.incremental, 0
    try:
        if inc.enabled:
            chosen = plan_incremental(manifest, cfg.output, checked.fingerprint, inc.max_attempts, cfg.storage.store)
            manifest, unchanged = chosen.todo, chosen.unchanged
            record["incremental"] = {"unchanged": unchanged, "taken": chosen.reasons}
            folder.freeze_listing(chosen.listing)
        folder.freeze_manifest(manifest)
        folder.write_json("run.json", record)
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
        unchanged = int(folder.read_json("run.json").get("incremental", {}).get("unchanged", 0))
    else:
        if folder.exists():
            raise JobError(f"{redact(folder.uri)}: run folder exists already; resume it or pick another --run-id")
        fingerprint = checked.fingerprint
        manifest, unchanged = _freeze(cfg, checked, folder)
    done = folder.done_ids()
    todo = manifest.filter(pc.invert(pc.is_in(manifest.column(ID), value_set=done))) if len(done) else manifest
    return Plan(folder, run_id, manifest, todo, done, fingerprint, unchanged)


def _source(todo: pa.Table, batch_size: int):
    """The rows still to do, as Arrow blocks built in the driver: one CPU-stage batch per block
    (so several CPU workers share a small run), at most ``MAX_INPUT_BLOCKS`` blocks.

    Only the columns the stages read travel (pass-through columns are joined back by the
    writer), as strings. ``from_blocks`` takes the slices as they are and computes their
    metadata here: no Python object per row (a million-row manifest stays a few columns),
    and no Ray task per block, which ``from_arrow`` runs for metadata (1.5-3 s of a run's
    start on a warm local cluster, measured).
    """
    import ray

    columns = [c for c in STAGE_INPUT_COLUMNS if c in todo.column_names]
    table = todo.select(columns).cast(pa.schema([(c, pa.string()) for c in columns]))
    per_block = max(batch_size, -(-table.num_rows // MAX_INPUT_BLOCKS))
    # Zero-copy slices: Ray's Arrow serialization ships only a slice's own rows (measured:
    # 57 KB for 1,000 rows of a 54 MB table), not the buffers it shares with the others.
    return ray.data.from_blocks([table.slice(lo, per_block) for lo in range(0, table.num_rows, per_block)])


def _dataset(cfg: JobConfig, stages: StagesConfig, checked: Checked, p: Plan, tally: Any, verbose: bool):
    from ray.data import ActorPoolStrategy, DataContext

    from jobs.run.actor_watch import ActorWatch
    from jobs.run.workers import CpuWorker, ModelWorker, PartWriter

    ctx = DataContext.get_current()
    ctx.execution_no_progress_timeout_s = cfg.ray.no_progress_timeout_s
    ctx.custom_execution_callback_classes = [ActorWatch]  # a dead pool actor ends the attempt at once
    ctx.enable_progress_bars = verbose  # Ray Data's own bars; the job shows its progress (jobs.run.progress)
    # A lost actor is either restarted in place by Ray (actor_restarts) or fails the attempt,
    # which the driver recovers from (_execute); its tasks follow the same rule.
    restarts = {"max_restarts": cfg.ray.actor_restarts, "max_task_retries": 0 if cfg.ray.actor_restarts == 0 else -1}
    # Ray 2.60 deprecates passing max_restarts/max_task_retries through map_batches' **ray_remote_args
    # but has no named parameter for them yet; its warning would print on every run.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        st, log_mel = stages, checked.plan.log_mel
        ds = _source(p.todo, st.prepare.batch_size)
        ds = ds.map_batches(
            CpuWorker, batch_size=st.prepare.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"audio": cfg.audio, "log_mel": log_mel, "chunked": cfg.decoding.long_form == "chunked",
                                   "idle_priority": st.prepare.idle_priority, "store": cfg.storage.store},
            compute=ActorPoolStrategy(min_size=1, max_size=st.prepare.concurrency), num_cpus=st.prepare.num_cpus,
            **restarts,
        )
        ds = ds.map_batches(
            ModelWorker, batch_size=st.transcribe.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"transcriber_config": checked.transcriber_config(cfg), "log_mel": log_mel, "tally": tally,
                                   "store": cfg.storage.store},
            compute=ActorPoolStrategy(min_size=st.transcribe.min_actors, max_size=st.transcribe.max_actors),
            num_gpus=st.transcribe.num_gpus or None, num_cpus=st.transcribe.num_cpus, **restarts,
        )
        stamp = {MODEL: label(cfg.model), FINGERPRINT: p.fingerprint, RUN_ID: p.run_id}
        return ds.map_batches(
            PartWriter, batch_size=st.write.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"run_uri": p.folder.uri, "schema": output_schema(p.manifest.schema), "stamp": stamp,
                                   "store": cfg.storage.store},
            compute=ActorPoolStrategy(min_size=1, max_size=1), num_cpus=st.write.num_cpus, **restarts,
        )


def _stream(cfg: JobConfig, stages: StagesConfig, checked: Checked, p: Plan, progress: Progress, tally: Any,
            verbose: bool) -> None:
    """One attempt over ``p.todo``, counting what lands in ``progress``."""
    for batch in _dataset(cfg, stages, checked, p, tally, verbose).iter_batches(batch_size=None, batch_format="numpy"):
        failed = sum(e is not None for e in batch[ERROR])
        progress.rows(len(batch[ID]), int(failed), float(sum(batch[DURATION])))


def _window_tally() -> Any:
    """A new actor for the model actors to report decoded windows to, pinned to the driver's node (no CPU).

    Each attempt gets its own: a tally lost with an attempt's actors is never reused,
    and if the driver's node goes, the driver goes with it.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(WindowTally).options(num_cpus=0, scheduling_strategy=here).remote()


def _room_after_loss(cfg: JobConfig, p: Plan) -> StagesConfig:
    """The stages sized to the surviving cluster, waiting ``ray.capacity_wait_s`` for Ray to drop the lost nodes and for room."""
    from jobs.run.capacity import describe_need, wait_for_room
    from jobs.run.ray_cluster import cluster_resources, wait_for_settled_nodes

    wait_for_settled_nodes(cfg.ray.capacity_wait_s)  # no work planned onto a node that is gone but still listed
    stages, have = wait_for_room(cfg.stages, cluster_resources, cfg.ray.capacity_wait_s)
    if stages is None:
        raise JobError(f"the cluster has no room left after losing a node: {describe_need(cfg.stages, have)} "
                       f"(waited {cfg.ray.capacity_wait_s:g} s); when it has, run: asr-batch resume {redact(p.folder.uri)}")
    return stages


def _execute(cfg: JobConfig, checked: Checked, p: Plan, verbose: bool = False) -> float:
    """Run the stages over ``p.todo``, recovering from lost workers and nodes; return the audio seconds transcribed.

    A worker, actor or node lost mid-run fails the attempt (``ray.actor_restarts: 0``);
    the driver then plans the files still to do from ``data/`` (as ``resume`` does) and
    runs them on what is left of the cluster, up to ``ray.recoveries`` times. Parts are
    whole or absent and ``deduplicate`` keeps one row per id, so nothing is lost or doubled.
    """
    from jobs.run.capacity import describe_need, fitted
    from jobs.run.ray_cluster import cluster_resources, failure_cause, init_ray, is_lost_worker

    local = init_ray(cfg.ray, verbose)
    stages = fitted(cfg.stages, cluster_resources()) if local else cfg.stages
    if stages is None:  # a local cluster of fixed size that cannot hold the stages: waiting would not help
        raise JobError(f"ray.num_cpus is too small: {describe_need(cfg.stages, cluster_resources())}")
    progress = Progress(p.manifest.num_rows, p.manifest.num_rows - p.todo.num_rows, cfg.progress_s)
    reader = TallyReader(progress)
    attempt, recoveries = p, 0
    try:
        while True:
            try:
                tally = reader.follow(_window_tally())
                _stream(cfg, stages, checked, attempt, progress, tally, verbose)
                return progress.counts.audio_s
            except Exception as exc:  # noqa: BLE001 - Ray's failure: recovered from, or told in one line
                if not is_lost_worker(exc) or recoveries == cfg.ray.recoveries:
                    raise JobError(f"the run stopped: {failure_cause(exc)}; "
                                   f"fix the cause, then: asr-batch resume {redact(p.folder.uri)}") from exc
                recoveries += 1
                attempt = plan(cfg, checked, resume=True)
                progress.restart(attempt.manifest.num_rows - attempt.todo.num_rows)
                print(f"asr-batch: lost a worker or node ({failure_cause(exc)}); planning the {attempt.todo.num_rows} "
                      f"files still to do again (recovery {recoveries} of {cfg.ray.recoveries})", file=sys.stderr, flush=True)
                stages = _room_after_loss(cfg, attempt)
    finally:
        reader.stop()
        progress.close()


def run_job(cfg: JobConfig, resume: bool = False, break_lock: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Preflight, then run (or resume) the job to completion under the output root's lock; return the ``_SUCCESS`` figures."""
    from jobs.state.lock import RootLock

    started = time.perf_counter()
    cfg = dataclasses.replace(cfg, run_id=cfg.run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    checked = preflight(cfg)
    _check_shared_paths(cfg, verbose)
    _check_output_root(cfg.output)
    lock = RootLock(cfg.output, cfg.run_id, cfg.lock_ttl_s, cfg.storage.store)
    lock.acquire(break_stale=break_lock)
    try:
        return _run_locked(cfg, checked, resume, started, verbose)
    finally:
        lock.release()


def _run_locked(cfg: JobConfig, checked: Checked, resume: bool, started: float, verbose: bool) -> dict[str, Any]:
    p = plan(cfg, checked, resume)
    total = p.manifest.num_rows
    print(f"run {redact(p.folder.uri)}: {total} files, {total - p.todo.num_rows} already done, "
          f"{p.todo.num_rows} to do", file=sys.stderr)
    audio_now = _execute(cfg, checked, p, verbose) if p.todo.num_rows else 0.0
    dropped = p.folder.deduplicate()
    counts = summarize(p.folder.keys(), p.done_before)
    missing = total - counts["rows"]
    if missing:
        raise JobError(f"{missing} manifest ids have no output row; resume the run to finish them")
    wall = time.perf_counter() - started
    summary = {
        **counts, "unchanged": p.unchanged, "audio_hours": round(counts["audio_s"] / 3600, 4),
        "wall_s": round(wall, 2), "rtfx": round(audio_now / wall, 2) if wall else None,
        "duplicates_dropped": dropped, "output": redact(p.folder.uri),
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    p.folder.write_json(SUCCESS, summary)
    return summary


def resume_config(run_uri: str, overrides: list[str]) -> JobConfig:
    """The config recorded in a run folder's ``run.json``, with ``--set`` overrides applied."""
    folder = RunFolder(run_uri.rstrip("/"))  # the recorded storage.retry_s is not known yet: the default
    if not folder.exists():
        raise JobError(f"{redact(folder.uri)}: no run.json here, nothing to resume")
    recorded = folder.read_json("run.json")["config"]
    recorded.update(output=storage.parent(folder.uri), run_id=folder.uri.rsplit("/", 1)[-1])
    return load_config(None, overrides, **recorded)
