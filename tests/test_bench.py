"""The benchmark: its corpus, and every mode on a tiny corpus; each figure checked against what is known of it.

No timing is asserted: every time-based figure is checked against the times the same
JSON reports (RTFx is audio over the median, a ratio is the ratio of two RTFx figures),
and every audio figure and transcript against the fixtures themselves.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from asr_actor.audio import decode_audio
from conftest import GOOD, allowed_errors, cpu_dtype, good_fixtures, measured, reference_text
from servers import job_env, ray_stop

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
MODES = ("bare", "job", "job_s3", "origin", "faster_whisper")
LONG = "long_pauses.ogg"  # the corpus's one long recording, left out of a corpus under 3.5 minutes


def _seconds(path: Path) -> float:
    return decode_audio(path.read_bytes()).duration_s


def test_the_corpus_takes_every_audio_fixture_and_nothing_else():
    sys.path.insert(0, str(BENCH.parent))
    from bench_parts import corpus

    files = corpus.build(20)  # long enough to go round the whole pool
    names = {name.split("-", 1)[1] for name, _, _ in files}
    assert names == {p.name for p in good_fixtures()}  # the .txt references and .words.tsv timings are not audio
    pool = sorted(good_fixtures(), key=lambda p: p.name != LONG)  # the long recording first, then the short files
    assert [name for name, _, _ in files] == [f"{i:04d}-{pool[i % len(pool)].name}" for i in range(len(files))]
    seconds = [_seconds(GOOD / name.split("-", 1)[1]) for name, _, _ in files]
    assert [s for _, _, s in files] == seconds and [d for _, d, _ in files] == [
        (GOOD / name.split("-", 1)[1]).read_bytes() for name, _, _ in files]
    assert sum(seconds[:-1]) < 20 * 60 <= sum(seconds)  # rounds until 20 minutes, not a file more
    longs = sum(name.endswith(LONG) for name, _, _ in files)  # no other fixture is over 30 s
    assert corpus.describe(files) == {"files": len(files), "audio_s": round(sum(seconds), 2), "files_over_30s": longs,
                                      "shortest_s": round(min(seconds), 2),
                                      "longest_s": round(_seconds(GOOD / LONG), 2)}


def _tiny_corpus(minutes: float) -> list[Path]:
    """The fixtures of a corpus under 3.5 minutes: the short ones in name order, until ``minutes`` of audio."""
    files: list[Path] = []
    for path in (p for p in good_fixtures() if p.name != LONG):
        if sum(map(_seconds, files)) >= minutes * 60:
            break
        files.append(path)
    return files


def _timed(figures: dict) -> None:
    """A mode's figures from ``--repeats 1``: one time, so min = median = max; RTFx is audio over it."""
    assert figures["repeats"] == 1 and figures["min_s"] == figures["median_s"] == figures["max_s"]
    assert figures["rtfx"] == pytest.approx(figures["audio_s"] / figures["median_s"], rel=0.01, abs=0.005)  # rounded


def _bench(tmp_path, cache, *args):
    env = job_env({}, cache)
    try:
        proc = subprocess.run([sys.executable, str(BENCH), "--out", str(tmp_path / "out"), "--repeats", "1", *args],
                              env=env, capture_output=True, text=True, timeout=900)
    finally:
        ray_stop(env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    saved = list((tmp_path / "out").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text()) == doc
    assert doc["machine"]["cores"] == os.cpu_count() and doc["machine"]["versions"]["torch"] == metadata.version("torch")
    return doc


@pytest.mark.slow
def test_every_mode_covers_the_corpus_and_hears_the_same_words(tmp_path, asr_cache, offline_model_dir):
    from asr_actor.wer import word_errors

    doc = _bench(tmp_path, asr_cache, "--minutes", "0.3", "--modes", ",".join(MODES))
    fixtures = _tiny_corpus(0.3)  # 18 s: the first three short fixtures, 18.4 s
    seconds = [_seconds(p) for p in fixtures]
    assert doc["corpus"] == {"files": len(fixtures), "audio_s": round(sum(seconds), 2), "files_over_30s": 0,
                             "shortest_s": round(min(seconds), 2), "longest_s": round(max(seconds), 2)}
    results = doc["results"]
    for mode in MODES:  # faster_whisper too: the test extra installs it
        assert results[mode]["audio_s"] == pytest.approx(doc["corpus"]["audio_s"], abs=0.01), mode  # all of it, once
        _timed(results[mode])
    probe, texts = doc["probe"]["file"], doc["probe"]["texts"]
    assert probe == f"0000-{fixtures[0].name}" and set(texts) == set(MODES)
    heard = word_errors(reference_text(fixtures[0]), texts["bare"])  # as the fixture table measured it, give or take
    assert heard.reference_words == measured()[fixtures[0].name][0] and heard.errors <= allowed_errors(fixtures[0].name)
    for mode in MODES:  # one fixture, one model: every way of running it hears the same words, give or take one
        assert word_errors(texts["bare"], texts[mode]).errors <= 1, (mode, texts[mode], texts["bare"])

    startup, job = results["job_startup"], results["job"]
    assert startup["audio_s"] == pytest.approx(doc["corpus"]["shortest_s"], abs=0.01)  # the corpus's shortest file
    _timed(startup)
    if job["median_s"] > startup["median_s"]:  # the job's time past its start-up, over the whole corpus
        busy = results["job_throughput"]["seconds_after_startup"]
        assert busy == pytest.approx(job["median_s"] - startup["median_s"], abs=0.002)
        assert results["job_throughput"]["audio_s"] == job["audio_s"]
        assert results["job_throughput"]["rtfx"] == pytest.approx(job["audio_s"] / busy, rel=0.01, abs=0.005)
    else:  # start-up took as long as the whole corpus: no rate to derive
        assert "job_throughput" not in results
    pairs = [("job", "bare"), ("job", "origin"), ("job", "faster_whisper"), ("job_s3", "bare"), ("bare", "origin")]
    pairs += [("job_throughput", "bare"), ("job_throughput", "origin")] if "job_throughput" in results else []
    assert doc["ratios"] == pytest.approx({f"{a}/{b}": results[a]["rtfx"] / results[b]["rtfx"] for a, b in pairs}, abs=0.001)


@pytest.mark.slow
def test_translate_beside_transcribe_on_the_multilingual_clips(tmp_path, asr_cache):
    from asr_actor.guards import compression_ratio

    sys.path.insert(0, str(BENCH.parent))
    from bench_parts import corpus

    doc = _bench(tmp_path, asr_cache, "--corpus", "multilingual", "--minutes", "0.3", "--modes", "transcribe,translate",
                 "--set", "model.id=offline:base")
    clips = corpus.build(0.3, "multilingual")
    assert doc["corpus"]["files"] == len(clips) and [n for n, _, _ in clips][0].endswith("de_fleurs_004.ogg")
    results = doc["results"]
    for task in ("transcribe", "translate"):
        assert results[task]["audio_s"] == pytest.approx(doc["corpus"]["audio_s"], abs=0.01), task
        _timed(results[task])
        passes = results[task]["passes_by_temperature"]
        assert passes["0"]["passes"] == len(clips)  # one window each, each decoded greedily first
        assert all(p["tokens"] >= p["passes"] for p in passes.values())  # every pass generates its end token at least
        hotter = [p["passes"] for t, p in passes.items() if t != "0"]
        assert hotter == sorted(hotter, reverse=True)  # a later temperature decodes only what the one before failed
    assert doc["ratios"] == {"translate/transcribe": pytest.approx(
        results["translate"]["rtfx"] / results["transcribe"]["rtfx"], abs=0.001)}
    probe = doc["probe"]["texts"]
    assert probe["transcribe"].startswith("Die Höhle") and compression_ratio(probe["translate"]) <= 2.4
    assert probe["translate"].startswith("The ")


@pytest.mark.slow
def test_synthetic_shapes(tmp_path, asr_cache):
    doc = _bench(tmp_path, asr_cache, "--synthetic", "tiny", "--batches", "1,2")
    points = doc["synthetic"]["points"]
    assert (doc["synthetic"]["model"], doc["synthetic"]["tokens_per_window"]) == ("tiny", 100)
    assert [p["batch"] for p in points] == [1, 2]
    for point in points:  # one repeat: one time; a window is 30 s of audio (figures rounded to 2 and 1 decimals)
        assert (point["attention"], point["dtype"]) == ("sdpa", "float16" if doc["machine"]["gpu"] else "float32")
        assert point["min_s"] == point["median_s"] == point["max_s"]
        assert point["windows_per_s"] == pytest.approx(point["batch"] / point["median_s"], rel=0.01, abs=0.005)
        assert point["rtfx"] == pytest.approx(30 * point["batch"] / point["median_s"], rel=0.01, abs=0.05)


@pytest.mark.slow
def test_the_cpu_variants_report_speed_and_words(asr_cache, offline_model_dir):
    proc = subprocess.run([sys.executable, str(BENCH.parent / "bench_cpu.py"), "--files", "2", "--rounds", "1",
                           "--variants", "bfloat16-eager,int8-dynamic-float32"],
                          env=job_env({}, asr_cache), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    variants = doc["variants"]
    two = good_fixtures()[:2]
    assert (doc["files"], doc["rounds"], doc["machine"]["cores"]) == (2, 1, os.cpu_count())
    assert doc["audio_s"] == round(sum(map(_seconds, two)), 1)
    # The pooled WER of the two fixtures may reach the table's measured errors plus each one's margin.
    wer_bar = sum(allowed_errors(p.name) for p in two) / sum(measured()[p.name][0] for p in two)
    base = variants["float32-sdpa"]  # the reference always runs
    assert base["speedup"] == 1.0 and base["differ_from_float32"] == 0 and base["long_wer"] is None  # no long file
    assert base["wer"] <= wer_bar
    bf16 = variants["bfloat16-eager"]
    if cpu_dtype() != "bfloat16":
        assert bf16["skipped"].startswith("model.dtype bfloat16 on CPU: this CPU has no native bfloat16")
        return
    assert (bf16["dtype"], bf16["attention"]) == ("bfloat16", "eager")
    assert bf16["speedup"] == pytest.approx(base["median_s"] / bf16["median_s"], rel=0.05)
    assert bf16["wer"] <= wer_bar and abs(bf16["wer"] - base["wer"]) < 0.05
    int8 = variants["int8-dynamic-float32"]
    if importlib.util.find_spec("torchao") is None:
        assert int8 == {"skipped": "torchao not installed"}
    else:
        assert int8["wer"] <= wer_bar
