"""The benchmark: its corpus, and every mode on a tiny corpus, each figure plausible (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cpu_dtype
from servers import job_env, ray_stop

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
MODES = ("bare", "job", "job_s3", "origin", "faster_whisper")


def test_the_corpus_takes_every_audio_fixture_and_nothing_else():
    sys.path.insert(0, str(BENCH.parent))
    from bench_parts import corpus

    from conftest import good_fixtures

    files = corpus.build(20)  # long enough to go round the whole pool
    names = {name.split("-", 1)[1] for name, _, _ in files}
    assert names == {p.name for p in good_fixtures()}  # the .txt references and .words.tsv timings are not audio
    assert corpus.describe(files)["audio_s"] >= 20 * 60


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
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["torch"]
    return doc


@pytest.mark.slow
def test_every_mode_covers_the_corpus_and_hears_the_same_words(tmp_path, asr_cache, offline_model_dir):
    from asr_actor.wer import word_errors

    doc = _bench(tmp_path, asr_cache, "--minutes", "0.3", "--modes", ",".join(MODES))
    assert doc["corpus"]["audio_s"] >= 18
    for mode in MODES:  # faster_whisper too: the test extra installs it
        r = doc["results"][mode]
        assert r["rtfx"] > 0 and r["audio_s"] == pytest.approx(doc["corpus"]["audio_s"], rel=0.01), mode
        assert r["min_s"] <= r["median_s"] <= r["max_s"]
    texts = doc["probe"]["texts"]
    assert set(texts) == set(MODES) and len(texts["bare"].split()) >= 8
    for mode in MODES:  # one fixture, one model: every way of running it hears the same words, give or take one
        assert word_errors(texts["bare"], texts[mode]).errors <= 1, (mode, texts[mode], texts["bare"])
    assert doc["results"]["job_startup"]["median_s"] > 0 and doc["results"]["job_startup"]["audio_s"] > 0
    if "job_throughput" in doc["results"]:  # absent only when start-up took as long as the whole corpus
        assert doc["results"]["job_throughput"]["rtfx"] >= doc["results"]["job"]["rtfx"]
    assert set(doc["ratios"]) >= {"job/bare", "job/origin", "bare/origin"}
    assert doc["ratios"]["job/bare"] == pytest.approx(doc["results"]["job"]["rtfx"] / doc["results"]["bare"]["rtfx"], rel=0.01)


@pytest.mark.slow
def test_synthetic_shapes(tmp_path, asr_cache):
    doc = _bench(tmp_path, asr_cache, "--synthetic", "tiny", "--batches", "1,2")
    points = doc["synthetic"]["points"]
    assert doc["synthetic"]["tokens_per_window"] == 100
    assert [p["batch"] for p in points] == [1, 2]
    for point in points:
        assert point["windows_per_s"] > 0 and point["rtfx"] > 0 and point["attention"] == "sdpa"
        assert point["min_s"] <= point["median_s"] <= point["max_s"]


@pytest.mark.slow
def test_the_cpu_variants_report_speed_and_words(asr_cache, offline_model_dir):
    proc = subprocess.run([sys.executable, str(BENCH.parent / "bench_cpu.py"), "--files", "2", "--rounds", "1",
                           "--variants", "bfloat16-eager,int8-dynamic-float32"],
                          env=job_env({}, asr_cache), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    variants = doc["variants"]
    assert doc["files"] == 2 and doc["audio_s"] > 8 and doc["machine"]["cores"] >= 1
    base = variants["float32-sdpa"]  # the reference always runs
    assert base["speedup"] == 1.0 and base["differ_from_float32"] == 0 and base["long_wer"] is None
    assert 0 <= base["wer"] < 0.2  # two clear fixtures
    bf16 = variants["bfloat16-eager"]
    if cpu_dtype() != "bfloat16":
        assert bf16["skipped"].startswith("model.dtype bfloat16 on CPU: this CPU has no native bfloat16")
        return
    assert (bf16["dtype"], bf16["attention"]) == ("bfloat16", "eager") and bf16["median_s"] > 0
    assert bf16["speedup"] == pytest.approx(base["median_s"] / bf16["median_s"], rel=0.05)
    assert abs(bf16["wer"] - base["wer"]) < 0.05
    assert variants["int8-dynamic-float32"] == {"skipped": "torchao not installed"} or variants["int8-dynamic-float32"]["wer"] < 0.2
