"""whisper's per-file outputs: ``transcribe --output-format`` and ``export --format txt|srt|vtt|tsv``, on real tiny.en output."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pysubs2
import pytest

import cli
from conftest import BAD, GOOD

SPEECH = [GOOD / "wav16k_mono.wav", GOOD / "silence_inside_speech.flac", GOOD / "flac16k_mono.flac"]


@pytest.fixture(scope="module")
def whisper_files(offline_model_dir, asr_cache, tmp_path_factory):
    """One ``transcribe`` with whisper's spellings: every format into subs/, the JSON lines into -o."""
    tmp = tmp_path_factory.mktemp("transcribe-outputs")
    inputs = [*SPEECH, BAD / "empty.wav"]
    proc = cli.run("transcribe", "--model", str(offline_model_dir), *map(str, inputs), "--output_format", "all",
                "--output_dir", str(tmp / "subs"), "-o", str(tmp / "out.jsonl"), cache=asr_cache)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["id"]).stem: r for r in map(json.loads, (tmp / "out.jsonl").read_text().splitlines())}
    return tmp / "subs", rows, proc.stderr


def _assert_cues_match(subs: pysubs2.SSAFile, row: dict) -> None:
    segments = row["segments"]
    assert len(subs) == len(segments) > 0
    for event, seg in zip(subs, segments):
        assert (event.start, event.end) == (round(1000 * seg["start"]), round(1000 * seg["end"]))
        assert event.start <= event.end
    for before, after in zip(subs, list(subs)[1:]):
        assert before.end <= after.start  # in order, never overlapping
    assert " ".join(e.plaintext for e in subs) == row["text"]  # the transcript's own rule: segments joined by a space


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_back_to_the_rows_segments(whisper_files, fmt):
    subs_dir, rows, _ = whisper_files
    for audio in SPEECH:
        subs = pysubs2.load(str(subs_dir / f"{audio.stem}.{fmt}"), format_=fmt)
        _assert_cues_match(subs, rows[audio.stem])
    assert len(rows["silence_inside_speech"]["segments"]) >= 2  # one file with cues on both sides of the pause


def test_txt_is_one_segment_per_line_and_tsv_has_whispers_integer_milliseconds(whisper_files):
    subs_dir, rows, _ = whisper_files
    for audio in SPEECH:
        segments = rows[audio.stem]["segments"]
        assert (subs_dir / f"{audio.stem}.txt").read_text(encoding="utf-8").splitlines() == [s["text"] for s in segments]
        with open(subs_dir / f"{audio.stem}.tsv", encoding="utf-8", newline="") as fh:
            table = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        assert table[0] == ["start", "end", "text"]
        assert table[1:] == [[str(round(1000 * s["start"])), str(round(1000 * s["end"])), s["text"]] for s in segments]


def test_json_is_the_row_and_a_failed_file_gets_no_files_but_its_error_on_stderr(whisper_files):
    subs_dir, rows, stderr = whisper_files
    for audio in SPEECH:
        assert json.loads((subs_dir / f"{audio.stem}.json").read_text(encoding="utf-8")) == rows[audio.stem]
    assert rows["empty"]["error"] == "decode: empty file (0 bytes)"
    assert not list(subs_dir.glob("empty.*"))
    assert f"failed: {BAD / 'empty.wav'}: decode: empty file (0 bytes) (no output files)" in stderr.splitlines()
    assert sorted(p.name for p in subs_dir.iterdir()) == sorted(
        f"{a.stem}.{fmt}" for a in SPEECH for fmt in ("txt", "srt", "vtt", "tsv", "json"))


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "out.srt"], "asr-batch: -o out.srt: -o writes JSON lines; for srt files use --output-format srt --output-dir DIR"),
    (["-o", "out.json"], "asr-batch: -o out.json: -o writes JSON lines; for json files use --output-format json --output-dir DIR"),
    (["-o", "out.csv"], "asr-batch: -o out.csv: -o writes JSON lines; name it .jsonl or .ndjson, or give no suffix"),
    (["--output-dir", "subs"], "asr-batch: --output-dir needs --output-format (txt, srt, vtt, tsv, json or all)"),
])
def test_outputs_it_would_not_write_are_refused_before_any_work(tmp_path, args, message):
    proc = cli.run("transcribe", str(GOOD / "wav16k_mono.wav"), *args, cache=tmp_path, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [message]
    assert list(tmp_path.iterdir()) == []  # no model cache, no output file


def test_two_inputs_of_the_same_name_are_refused_naming_both(tmp_path):
    for folder, audio in (("a", GOOD / "wav16k_mono.wav"), ("b", GOOD / "flac16k_mono.flac")):
        (tmp_path / folder).mkdir()
        shutil.copy(audio, tmp_path / folder / f"x{audio.suffix}")
    proc = cli.run("transcribe", "a/x.wav", "b/x.flac", "--model", "/no/such/model", "--output-format", "srt",
                "--output-dir", "subs", cache=tmp_path, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "asr-batch: a/x.wav and b/x.flac would both write subs/x.*; transcribe them into separate --output-dir folders"]
    assert not (tmp_path / "subs").exists()


def test_the_cli_offers_exactly_the_formats_the_registry_writes():
    from jobs.cli import build_parser
    from jobs.report.formats import ALL, EXPORT_FORMATS, FILE_FORMATS, FORMATS, PER_FILE_FORMATS, TABLE_FORMATS

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert [a.choices for a in sub["transcribe"]._actions if a.dest == "output_format"] == [[*FILE_FORMATS, ALL]]
    assert [a.choices for a in sub["export"]._actions if a.dest == "format"] == [list(EXPORT_FORMATS)]
    assert set(PER_FILE_FORMATS) < set(FILE_FORMATS) and set(EXPORT_FORMATS) == {*TABLE_FORMATS, *PER_FILE_FORMATS}
    assert all((f.table is None) != (f.row is None) for f in FORMATS.values())  # each format has one writer


def test_the_help_imports_no_writer():
    """The CLI reads its choices from the registry: building the parser imports no writer library."""
    heavy = ("pyarrow", "pysubs2", "fsspec", "numpy", "torch", "transformers", "ray")
    code = f"import sys; from jobs.cli import build_parser; build_parser(); print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.stdout.strip() == "[]"


def test_id_names_are_safe_readable_and_unique():
    from jobs.report.format_names import id_names

    ids = ["s3://bucket/a/b.wav", "calls/2026/x.wav", "calls_2026/x.wav", "Call.wav", "call.wav", "../..", "é" * 300,
           "a" * 300]
    names = id_names(ids)
    assert names[0] == "bucket_a_b.wav" and names[1].startswith("calls_2026_x.wav~")
    assert names[2].startswith("calls_2026_x.wav~") and names[1] != names[2]  # same safe name: both get a hash
    assert names[3].startswith("Call.wav~") and names[4].startswith("call.wav~")  # one name on a case-blind disk
    assert names[5].startswith("~") and names[6].startswith("~")  # nothing readable left: the hash alone
    assert names[7].startswith("a" * 200 + "~") and len(names[7]) == 211  # cut to 200 characters, and hashed
    assert len(set(names)) == len(ids)
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~") for n in names)
    assert id_names(ids) == names  # the same ids, the same names, every export


def _run_folder(root: Path, transcriber) -> tuple[str, list[dict]]:
    """A complete run folder of real tiny.en rows, written with the project's RunFolder and schema."""
    from asr_actor.schema import FINGERPRINT, ID, MODEL, RUN_ID, URI, output_schema, to_table
    from jobs.store.fetch import fetch_batch
    from jobs.state.run_folder import RunFolder

    ids = ["s3://bucket/a/b.wav", "calls/2026/x.wav", "calls/2026/gone.wav"]
    uris = [str(SPEECH[0]), str(SPEECH[1]), str(root / "gone.wav")]  # the last one is missing: an error row
    rows = transcriber(fetch_batch({ID: ids, URI: uris}, transcriber.config.audio))
    table = to_table(rows, output_schema(), {MODEL: "tiny.en", RUN_ID: "r1", FINGERPRINT: "fp"},
                     datetime(2026, 11, 27, tzinfo=timezone.utc))
    folder = RunFolder(str(root / "runs" / "r1"))
    folder.create({"run_id": "r1", "started_at": "2026-11-27"}, table.select([ID, URI]))
    folder.write_part(table)
    folder.mark_complete({})
    return folder.uri, table.to_pylist()


@pytest.fixture(scope="module")
def run_folder(transcriber, tmp_path_factory):
    return _run_folder(tmp_path_factory.mktemp("export-run"), transcriber)


@pytest.mark.parametrize("fmt", ["srt", "vtt", "txt", "tsv"])
def test_export_writes_one_file_per_ok_row_named_by_id_and_counts_the_error_rows(run_folder, tmp_path, fmt):
    from jobs.report.export import export

    uri, rows = run_folder
    assert [r["error"] is None for r in rows] == [True, True, False]
    figures = export(uri, str(tmp_path / "out"), fmt)
    assert (figures["rows"], figures["files"], figures["skipped_errors"]) == (3, 2, 1)
    by_name = {"bucket_a_b.wav": rows[0], "calls_2026_x.wav": rows[1]}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{n}.{fmt}" for n in by_name)
    for name, row in by_name.items():
        body = (tmp_path / "out" / f"{name}.{fmt}").read_text(encoding="utf-8")
        if fmt in ("srt", "vtt"):
            _assert_cues_match(pysubs2.SSAFile.from_string(body, format_=fmt), row)
        elif fmt == "txt":
            assert body.splitlines() == [s["text"] for s in row["segments"]] and " ".join(body.splitlines()) == row["text"]
        else:
            assert body.splitlines()[1:] == [f"{round(1000 * s['start'])}\t{round(1000 * s['end'])}\t{s['text']}"
                                             for s in row["segments"]]


def test_export_from_the_cli_prints_the_figures(run_folder, tmp_path, asr_cache):
    proc = cli.run("export", run_folder[0], "--to", str(tmp_path / "srt"), "--format", "srt", cache=asr_cache)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert (figures["files"], figures["skipped_errors"], figures["format"]) == (2, 1, "srt")
    assert (tmp_path / "srt" / "calls_2026_x.wav.srt").read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> ")
