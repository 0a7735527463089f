"""The benchmark corpus: the committed fixtures repeated into a realistic mix of short and long files."""

from __future__ import annotations

from pathlib import Path

from asr_actor.audio import decode_audio
from jobs.store.manifest import AUDIO_SUFFIXES

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
GOOD = DATA / "good"
MULTILINGUAL = DATA / "multilingual"  # real speech in five languages (tests/data/README.md)
SOURCES = ("fixtures", "multilingual")
LONG = "long_pauses.ogg"


def _audio(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.lower().endswith(AUDIO_SUFFIXES))


def build(minutes: float, source: str = "fixtures") -> list[tuple[str, bytes, float]]:
    """``(name, bytes, seconds)`` rounds of the ``source`` clips until ``minutes``: of the English fixtures, one
    long recording and every short file (under 3.5 minutes, a test's tiny corpus, only the short files); of
    the multilingual ones, every clip.
    """
    if source == "multilingual":
        pool = _audio(MULTILINGUAL)
    else:
        shorts = [p for p in _audio(GOOD) if p.name != LONG]
        pool = ([GOOD / LONG] if minutes >= 3.5 else []) + shorts
    durations = {p: decode_audio(p.read_bytes()).duration_s for p in pool}
    files, total, i = [], 0.0, 0
    while total < minutes * 60:
        p = pool[i % len(pool)]
        files.append((f"{i:04d}-{p.name}", p.read_bytes(), durations[p]))
        total += durations[p]
        i += 1
    return files


def describe(files: list[tuple[str, bytes, float]]) -> dict:
    seconds = [s for _, _, s in files]
    return {
        "files": len(files), "audio_s": round(sum(seconds), 2),
        "files_over_30s": sum(s > 30 for s in seconds), "shortest_s": round(min(seconds), 2),
        "longest_s": round(max(seconds), 2),
    }
