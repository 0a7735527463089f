"""``asr-batch transcribe`` as a user runs it: a subprocess on real files."""

from __future__ import annotations

import json
import os

import cli
from conftest import BAD, GOOD, cpu_dtype


def test_transcribe_writes_one_line_per_file_and_a_summary(offline_model_dir, tmp_path):
    out_file = tmp_path / "out.jsonl"
    files = [GOOD / "flac16k_mono.flac", BAD / "empty.wav", tmp_path / "missing.wav"]
    proc = cli.run("transcribe", "--model", str(offline_model_dir), *map(str, files), "-o", str(out_file), cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(f) for f in files]
    assert rows[0]["error"] is None and "corrupt file should never stop" in rows[0]["text"].lower()
    assert rows[1]["error"] == "decode: empty file (0 bytes)"
    assert rows[2]["error"] == f"fetch: object not found: {files[2]}" and rows[2]["text"] is None
    summary = json.loads(proc.stderr.split("summary: ", 1)[1])
    assert (summary["files_ok"], summary["files_failed"]) == (1, 2)
    assert summary["model"]["dtype"] == cpu_dtype() and summary["rtfx"] > 0
    assert "Loading weights" not in proc.stderr


def test_bad_options_exit_2_with_one_line(tmp_path):
    proc = cli.run("transcribe", "--batch-size", "0", str(GOOD), cache=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "asr-batch: decoding.batch_size must be >= 1, got 0"


def test_version_names_the_engine_without_loading_it(tmp_path):
    proc = cli.run("--version", cache=tmp_path)
    assert proc.returncode == 0
    line = proc.stdout.strip()
    assert line.startswith("asr-batch 0.") and "torch 2." in line and "transformers 5." in line and "ray 2." in line
    assert line.endswith(", as locked)")  # the test venv is installed from constraints.txt


def test_whisper_short_names_go_to_the_hub_and_an_unreachable_hub_names_the_offline_model(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = cli.run("transcribe", "--model", "large-v3", str(GOOD / "wav8k_mono.wav"), env=env, cache=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "asr-batch: cannot load Whisper model 'openai/whisper-large-v3': the Hugging Face hub cannot be reached and the "
        "model is not in its cache; without network use the model offline:tiny.en (the embedded tiny.en) or a local "
        "model folder"]
