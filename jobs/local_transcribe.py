"""``asr-batch transcribe``: the transcriber on local files in this process, no Ray.

The origin script's single-machine use, done the project's way: files are fetched
and decoded, windows from all of them are packed into full batches, one JSON line per
file is written (errors included), and a summary line gives files ok / failed, audio
seconds, wall seconds and RTFx.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from asr_actor.config import TranscriberConfig
from asr_actor.schema import DURATION, ERROR, ID, LANGUAGE, SEGMENTS, TEXT, URI
from asr_actor.transcriber import Transcriber
from jobs.fetch import fetch_batch
from jobs.progress import Progress

LINE_COLUMNS = (ID, TEXT, SEGMENTS, LANGUAGE, DURATION, ERROR)  # one JSON line per file


def _chunks(paths: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for lo in range(0, len(paths), size):
        yield paths[lo : lo + size]


def transcribe_files(cfg: TranscriberConfig, paths: Sequence[Path], out: TextIO, files_per_batch: int = 32) -> dict:
    """Transcribe ``paths``, one JSON line each to ``out``; return the summary figures."""
    started = time.perf_counter()
    transcriber = Transcriber(cfg)
    progress = Progress(len(paths))
    transcriber.on_windows = progress.windows
    ok = failed = 0
    audio_s = 0.0
    try:
        for group in _chunks(list(paths), files_per_batch):
            names = [str(p) for p in group]
            result = transcriber(fetch_batch({ID: names, URI: names}, cfg.audio))
            for i in range(len(group)):
                row = {k: result[k][i] for k in LINE_COLUMNS}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                ok, failed = ok + (row[ERROR] is None), failed + (row[ERROR] is not None)
                audio_s += row[DURATION]
            out.flush()
            progress.rows(len(group), sum(e is not None for e in result[ERROR]), sum(result[DURATION]))
    finally:
        progress.close()
    wall = time.perf_counter() - started
    return {
        "files_ok": ok, "files_failed": failed, "audio_s": round(audio_s, 2), "wall_s": round(wall, 2),
        "rtfx": round(audio_s / wall, 2) if wall else None, "model": asdict(transcriber.info),
    }


def expand(inputs: Sequence[str], suffixes: Sequence[str]) -> list[Path]:
    """Files as given, and the audio files (by suffix) inside any folder given, sorted."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        else:
            paths.append(p)
    return paths
