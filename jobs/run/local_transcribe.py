"""``asr-batch transcribe``: the transcriber on local files in this process, no Ray.

The origin script's single-machine use, done the project's way: files are fetched
and decoded, windows from all of them are packed into full batches, one JSON line per
file is written (errors included), and a summary line gives files ok / failed, audio
seconds, wall seconds and RTFx. With ``--output-format``, each file that was read also
gets whisper's files (:mod:`jobs.report.formats`, named by :func:`jobs.report.format_names.audio_names`);
one that failed gets none and its error on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

from asr_actor.config import TranscriberConfig
from asr_actor.errors import AsrBatchError, redact
from asr_actor.schema import DURATION, ERROR, ID, LANGUAGE, SEGMENTS, TEXT, URI
from asr_actor.transcriber import Transcriber
from asr_actor import storage
from jobs.store.fetch import fetch_batch
from jobs.report.format_names import audio_names
from jobs.report.formats import FILE_FORMATS, write_row
from jobs.run.progress import Progress

LINE_COLUMNS = (ID, TEXT, SEGMENTS, LANGUAGE, DURATION, ERROR)  # one JSON line per file
JSON_LINES_SUFFIXES = ("", ".jsonl", ".ndjson")  # what ``-o FILE`` may be called: it writes JSON lines


class OutputOptionError(AsrBatchError):
    """``-o``, ``--output-format`` and ``--output-dir`` asked for something this command does not write."""


def _chunks(paths: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for lo in range(0, len(paths), size):
        yield paths[lo : lo + size]


def transcribe_files(cfg: TranscriberConfig, paths: Sequence[Path], out: TextIO, files_per_batch: int = 32,
                     on_row: Callable[[dict[str, Any]], None] | None = None) -> dict:
    """Transcribe ``paths``, one JSON line each to ``out`` (and to ``on_row``, if given); return the summary figures."""
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
                if on_row is not None:
                    on_row(row)
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


def check_output_options(output: str | None, output_format: str | None, output_dir: str | None) -> None:
    """Refuse, before any work, an ``-o`` name it would not write (``out.srt``) or ``--output-dir`` alone."""
    if output is not None:
        suffix = Path(output).suffix.lower()
        if suffix not in JSON_LINES_SUFFIXES:
            fmt = suffix[1:]
            hint = (f"for {fmt} files use --output-format {fmt} --output-dir DIR" if fmt in FILE_FORMATS
                    else "name it .jsonl or .ndjson, or give no suffix")
            raise OutputOptionError(f"-o {redact(output)}: -o writes JSON lines; {hint}")
    if output_dir is not None and output_format is None:
        raise OutputOptionError(f"--output-dir needs --output-format ({', '.join(FILE_FORMATS)} or all)")
    if output_dir is not None and storage.is_local(output_dir) and os.path.isfile(output_dir):
        raise OutputOptionError(f"--output-dir {output_dir}: a file, not a folder")


def file_writer(paths: Sequence[Path], dest: str, formats: Sequence[str]) -> Callable[[dict[str, Any]], None]:
    """``on_row`` for ``--output-format``: an ok row's files into ``dest``; a failed row's error on stderr.

    Names are checked here, before any work: two inputs of the same name stop the command.
    """
    names = dict(zip(map(str, paths), audio_names(paths, dest)))

    def write(row: dict[str, Any]) -> None:
        if row[ERROR] is not None:
            print(f"failed: {redact(row[ID])}: {row[ERROR]} (no output files)", file=sys.stderr)
        else:
            write_row(row, dest, names[row[ID]], formats)

    return write
