"""The run's Ray Data dataset: the rows still to do, then the three stages as actor pools
(``stages.prepare``, ``.transcribe``, ``.write``: :mod:`jobs.run.workers`), streamed by the
driver, which only counts the small rows the write stage returns."""

from __future__ import annotations

import warnings
from typing import Any

import pyarrow as pa

from asr_actor.dummy import label
from asr_actor.schema import DURATION, ERROR, FINGERPRINT, ID, MODEL, RUN_ID, STAGE_INPUT_COLUMNS, output_schema
from jobs.config import JobConfig, StagesConfig
from jobs.run.planning import Plan
from jobs.run.preflight import Checked
from jobs.run.progress import Progress, WindowTally

MAX_INPUT_BLOCKS = 1024  # a run's input blocks: one per CPU-stage batch on small runs, bounded on huge ones


def source(todo: pa.Table, batch_size: int):
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


def build(cfg: JobConfig, stages: StagesConfig, checked: Checked, p: Plan, tally: Any, verbose: bool):
    from ray.data import ActorPoolStrategy, DataContext

    from jobs.run.actor_watch import ActorWatch
    from jobs.run.workers import PrepareWorker, TranscribeWorker, WriteWorker

    ctx = DataContext.get_current()
    ctx.execution_no_progress_timeout_s = cfg.ray.no_progress_timeout_s
    ctx.custom_execution_callback_classes = [ActorWatch]  # a dead pool actor ends the attempt at once
    ctx.enable_progress_bars = verbose  # Ray Data's own bars; the job shows its progress (jobs.run.progress)
    # A lost actor is either restarted in place by Ray (actor_restarts) or fails the attempt,
    # which the driver recovers from (jobs.run.pipeline._execute); its tasks follow the same rule.
    restarts = {"max_restarts": cfg.ray.actor_restarts, "max_task_retries": 0 if cfg.ray.actor_restarts == 0 else -1}
    # Ray 2.60 deprecates passing max_restarts/max_task_retries through map_batches' **ray_remote_args
    # but has no named parameter for them yet; its warning would print on every run.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        st, log_mel = stages, checked.plan.log_mel
        ds = source(p.todo, st.prepare.batch_size)
        ds = ds.map_batches(
            PrepareWorker, batch_size=st.prepare.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"audio": cfg.audio, "log_mel": log_mel, "chunked": cfg.decoding.long_form == "chunked",
                                   "idle_priority": st.prepare.idle_priority, "store": cfg.storage.store},
            compute=ActorPoolStrategy(min_size=1, max_size=st.prepare.concurrency), num_cpus=st.prepare.num_cpus,
            **st.prepare.ray_memory, **restarts,
        )
        ds = ds.map_batches(
            TranscribeWorker, batch_size=st.transcribe.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"transcriber_config": checked.transcriber_config(cfg), "log_mel": log_mel, "tally": tally,
                                   "store": cfg.storage.store},
            compute=ActorPoolStrategy(min_size=st.transcribe.min_actors, max_size=st.transcribe.max_actors),
            num_gpus=st.transcribe.num_gpus or None, num_cpus=st.transcribe.num_cpus, **restarts,
        )
        stamp = {MODEL: label(cfg.model), FINGERPRINT: p.fingerprint, RUN_ID: p.run_id}
        return ds.map_batches(
            WriteWorker, batch_size=st.write.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"run_uri": p.folder.uri, "schema": output_schema(p.manifest.schema), "stamp": stamp,
                                   "store": cfg.storage.store},
            compute=ActorPoolStrategy(min_size=1, max_size=1), num_cpus=st.write.num_cpus, **restarts,
        )


def stream(cfg: JobConfig, stages: StagesConfig, checked: Checked, p: Plan, progress: Progress, tally: Any,
            verbose: bool) -> None:
    """One attempt over ``p.todo``, counting what lands in ``progress``."""
    for batch in build(cfg, stages, checked, p, tally, verbose).iter_batches(batch_size=None, batch_format="numpy"):
        failed = sum(e is not None for e in batch[ERROR])
        progress.rows(len(batch[ID]), int(failed), float(sum(batch[DURATION])))


def window_tally() -> Any:
    """A new actor for the model actors to report decoded windows to, pinned to the driver's node (no CPU).

    Each attempt gets its own: a tally lost with an attempt's actors is never reused,
    and if the driver's node goes, the driver goes with it.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(WindowTally).options(num_cpus=0, scheduling_strategy=here).remote()
