"""The job as a short recipe of named stages on Ray Data.

    preflight -> plan -> prepare (fetch, decode, windows + log-mel; CPU actors)
              -> transcribe (model actors) -> write (Parquet parts) -> finalize (deduplicate, _SUCCESS)
              -> publish (with ``publish:``, the rows upserted into an Iceberg table: jobs.report.publish)

``preflight`` (:mod:`jobs.run.preflight`) resolves the model from its small files and
checks the config before anything is written; ``plan`` (:mod:`jobs.run.planning`)
freezes or reloads the run folder; the stages are :mod:`jobs.run.dataset`. Here: the
order of it all under the root's lock, recovery from lost workers and nodes, and
finishing the run folder. The driver shows progress on stderr (:mod:`jobs.run.progress`).
A failure of Ray itself becomes a :class:`JobError` with the cause in one line; the run
folder stays resumable.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

from asr_actor import storage
from asr_actor.errors import AsrBatchError, describe, redact
from jobs.config import JobConfig, StagesConfig, load_config
from jobs.run import dataset
from jobs.run.planning import JobError, Plan, plan
from jobs.run.preflight import Checked, preflight
from jobs.run.progress import Progress, TallyReader
from jobs.state.run_folder import RunFolder


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
                tally = reader.follow(dataset.window_tally())
                dataset.stream(cfg, stages, checked, attempt, progress, tally, verbose)
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

    def figures(counts: dict[str, Any]) -> dict[str, Any]:
        wall = time.perf_counter() - started
        return {"unchanged": p.unchanged, "audio_hours": round(counts["audio_s"] / 3600, 4),
                "wall_s": round(wall, 2), "rtfx": round(audio_now / wall, 2) if wall else None}

    summary = p.folder.finish(p.done_before, figures)
    if cfg.publish:  # still under the root's lock; _SUCCESS is written: a failed publish leaves the run complete
        summary["published"] = _publish(cfg, p.folder, verbose)
    return summary


def _publish(cfg: JobConfig, folder: RunFolder, verbose: bool) -> list[dict[str, Any]]:
    """Publish this run, and any complete run under the root not yet published to ``cfg.publish``, oldest first."""
    from jobs.report.publish import publish_pending

    try:
        return publish_pending(cfg.output, cfg.publish, cfg.storage.store, cfg.ray, verbose=verbose)
    except AsrBatchError as exc:
        raise JobError(f"the run is complete, but publishing it failed: {exc}; fix the cause, then: "
                       f"asr-batch publish {redact(folder.uri)}") from exc


def resume_config(run_uri: str, overrides: list[str]) -> JobConfig:
    """The config recorded in a run folder's ``run.json``, with ``--set`` overrides applied."""
    folder = RunFolder(run_uri.rstrip("/"))  # the recorded storage.retry_s is not known yet: the default
    if not folder.exists():
        raise JobError(f"{redact(folder.uri)}: no run.json here, nothing to resume")
    recorded = folder.record()["config"]
    recorded.update(output=storage.parent(folder.uri), run_id=folder.uri.rsplit("/", 1)[-1])
    return load_config(None, overrides, **recorded)
