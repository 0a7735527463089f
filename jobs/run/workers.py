"""The Ray Data workers of the job: the CPU stage, the model actor, the part writer.

Each is a callable class that Ray Data instantiates once per actor and calls on a
pyarrow batch (one row per file); all the work they do is in plain functions
(:mod:`jobs.store.fetch`, :mod:`asr_actor.preprocess`, :class:`asr_actor.transcriber.Transcriber`,
:class:`jobs.state.run_folder.RunFolder`) that run the same with no cluster.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import pyarrow as pa

from asr_actor.config import AudioConfig, TranscriberConfig
from asr_actor.features import LogMel
from asr_actor.preprocess import decode_batch, window_batch
from asr_actor.schema import DURATION, ERROR, ERROR_KIND, ID, PERMANENT, SEGMENTS, as_table
from asr_actor.vad import detector_for
from jobs.run import wire
from jobs.run.cpu_priority import lower_cpu_priority
from jobs.store.fetch import fetch_batch
from asr_actor.storage import Store


class PrepareWorker:
    """fetch -> decode -> (speech detection) -> windows + log-mel, on CPU workers (an actor pool of its own, so Ray
    does not fuse this work into the model actors).

    The log-mel settings come from the driver's model plan: this worker never loads the
    model or imports torch. With ``idle_priority`` the work runs at the lowest CPU
    priority: on a CPU-only node, where the model's threads already use every core, it
    fills their idle moments (on 2 cores such a process got ~0.15 of a core while slowing
    ``generate`` by ~2%, measured) instead of taking cores from them.
    """

    def __init__(
        self, audio: AudioConfig, log_mel: LogMel, chunked: bool, idle_priority: bool = False,
        store: Store = Store(),
    ) -> None:
        self.audio, self.log_mel, self.chunked, self.idle_priority = audio, log_mel, chunked, idle_priority
        self.store = store
        self.speech = detector_for(audio)  # audio.vad: silero; its model loads on the first file

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.idle_priority:
            lower_cpu_priority()  # every call: Ray Data may run calls on a thread of its own
        out = decode_batch(fetch_batch(batch.to_pydict(), self.audio, self.store), self.audio)
        windows = window_batch(out, self.audio, self.log_mel, self.chunked, self.speech)
        return as_table(wire.pack(windows, split_channels=self.audio.channels == "split"))


class TranscribeWorker:
    """One model per actor (Ray Data ``ActorPoolStrategy``); CPU work was done upstream.

    All torch work (loading the model and every call) runs on one thread the actor owns.
    Ray Data calls ``__init__`` on the actor's main thread and ``__call__`` on a thread of
    its own; OpenMP keeps a team of threads per calling thread, and with two teams on one
    machine libgomp stops spinning and parks its threads after every parallel region. On
    2 cores that made ``generate`` 25-30% slower (1.5 of 2 cores busy) than in a plain
    process; with one thread for everything it runs at the bare model's speed.
    """

    def __init__(self, transcriber_config: TranscriberConfig, log_mel: LogMel, tally: Any = None,
                 store: Store = Store()) -> None:
        import logging
        from concurrent.futures import ThreadPoolExecutor

        from asr_actor.transcriber import Transcriber

        # The worker's log file (Ray's logs folder) gets one line per call: files, windows, seconds.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.transcriber = self._thread.submit(Transcriber, transcriber_config, log_mel, store).result()
        self.shape = (log_mel.n_mels, log_mel.frames)
        self.tally = tally  # the driver's WindowTally (jobs.run.progress): decoded windows, for its progress display
        if tally is not None:
            self.transcriber.on_windows = self._report

    def _report(self, windows: int) -> None:
        try:
            self.tally.add.remote(windows)
        except Exception:  # noqa: BLE001 - progress is never worth a failed batch
            pass

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self._thread.submit(self._transcribe, batch).result()

    def _transcribe(self, batch: pa.Table) -> pa.Table:
        return as_table(self.transcriber(wire.unpack(batch.to_pydict(), *self.shape)))


class WriteWorker:
    """Rows -> one Parquet part in ``data/``; returns a small summary row per file.

    Manifest columns that only pass through do not travel with the audio: the writer
    takes them, with their exact Arrow types, from the run's frozen manifest by id.
    """

    def __init__(self, run_uri: str, schema: pa.Schema, stamp: Mapping[str, Any], store: Store = Store()) -> None:
        from asr_actor.schema import pass_through_columns
        from jobs.state.run_folder import RunFolder

        self.folder, self.schema, self.stamp = RunFolder(run_uri, store), schema, dict(stamp)
        extra = pass_through_columns(schema)
        self.manifest = self.folder.read_manifest().select([ID, *extra]) if extra else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        from asr_actor.schema import to_table

        rows = batch.to_pydict()
        rows[SEGMENTS] = [segs or [] for segs in rows.get(SEGMENTS, [])]
        # Only fetch knows a cause can pass (transient); every other error is permanent.
        kinds = rows.get(ERROR_KIND) or [None] * len(rows[ID])
        rows[ERROR_KIND] = [kind or (PERMANENT if err is not None else None) for kind, err in zip(kinds, rows[ERROR])]
        if self.manifest is not None:
            found = self.manifest.take(pc.index_in(batch.column(ID), value_set=self.manifest.column(ID)))
            rows.update({name: found.column(name) for name in found.column_names if name != ID})
        table = to_table(rows, self.schema, self.stamp, datetime.now(timezone.utc))
        self.folder.write_part(table)
        return as_table({ID: rows[ID], ERROR: rows[ERROR], DURATION: rows[DURATION]})
