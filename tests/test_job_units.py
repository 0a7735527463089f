"""Job pieces on plain data, no cluster: manifest checks, overrides, configs, run folder, fetch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from asr_actor.config import AudioConfig, ConfigError, TranscriberConfig
from asr_actor.features import LogMel
from asr_actor.model_plan import ModelPlan
from asr_actor.schema import CONTRACT_COLUMNS, output_schema
from jobs.config import JobConfig, apply_overrides, load_config
from jobs.store.fetch import fetch_batch
from jobs.run.fingerprint import changed, fingerprint, fingerprint_inputs
from jobs.store.manifest import ManifestError, read_manifest
from jobs.state.run_folder import RunFolder
import cli
from conftest import GOOD, good_fixtures

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_loads(path):
    # local.yaml is complete as it is; the GPU and cluster configs take --input and --output.
    given = {} if path.name == "local.yaml" else {"input": "s3://bucket/audio/", "output": "s3://bucket/runs/"}
    cfg = load_config(path, [], **given)
    assert isinstance(cfg, JobConfig) and isinstance(cfg, TranscriberConfig)
    assert cfg.transcriber() == TranscriberConfig(model=cfg.model, decoding=cfg.decoding, audio=cfg.audio)
    if path.name != "local.yaml":
        assert cfg.model.dtype == "float16" and cfg.stages.transcribe.num_gpus == 1


def test_config_files_present():
    assert {p.name for p in CONFIGS} >= {"local.yaml", "gpu.yaml", "cluster.yaml"}


def test_overrides_parse_yaml_values_and_reject_unknown_keys():
    data = apply_overrides({"decoding": {"batch_size": 8}}, ["decoding.batch_size=32", "model.id=openai/whisper-tiny"])
    assert data == {"decoding": {"batch_size": 32}, "model": {"id": "openai/whisper-tiny"}}
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["decoding.batch_size"])
    with pytest.raises(ConfigError, match=r"decoding: unknown key\(s\) \['batchsize'\]"):
        load_config(None, ["decoding.batchsize=3"], input="a", output="b")
    recorded = {"input": "a", "output": "b", "stages": {"transcribe": {"max_actors": 1}}}
    resumed = load_config(None, ["stages.transcribe.max_actors=4"], **recorded)
    assert resumed.stages.transcribe.max_actors == 4  # --set wins over the recorded config
    with pytest.raises(ConfigError, match="'input' is required"):
        load_config(None, [], output="b")


CPU_PLAN = ModelPlan(model_id="m", weights_id="w1", revision=None, device="cpu", dtype="float32",
                    attention="sdpa", multilingual=False, log_mel=LogMel())


def _fingerprint(overrides=(), **plan_changes) -> str:
    cfg = load_config(None, list(overrides), input="a", output="b")
    return fingerprint(fingerprint_inputs(cfg, dataclasses.replace(CPU_PLAN, **plan_changes)))


def test_fingerprint_follows_what_changes_transcripts():
    base = _fingerprint()
    assert len(base) == 16 and base == _fingerprint()
    # speed and resources only: same transcripts, same fingerprint
    assert base == _fingerprint(["decoding.batch_size=64", "stages.transcribe.max_actors=4", "stages.write.batch_size=3"])
    # anything the model or the decoding makes differently: another fingerprint
    others = [
        _fingerprint(device="cuda", dtype="float16"), _fingerprint(attention="eager"), _fingerprint(weights_id="w2"),
        _fingerprint(model_id="other"), _fingerprint(log_mel=LogMel(n_mels=128)), _fingerprint(["decoding.num_beams=5"]),
        _fingerprint(["decoding.long_form=sequential"]), _fingerprint(["audio.min_window_s=25"]),
        _fingerprint(["audio.vad=silero"]), _fingerprint(["audio.vad=silero", "audio.vad_pad_s=0.2"]),
    ]
    assert len({base, *others}) == len(others) + 1
    # VAD thresholds do nothing while it is off: runs without a VAD keep their fingerprint
    assert base == _fingerprint(["audio.vad=off", "audio.vad_pad_s=0.2"])


def test_changed_names_every_differing_key():
    cfg = load_config(None, [], input="a", output="b")
    before = fingerprint_inputs(cfg, CPU_PLAN)
    after = fingerprint_inputs(load_config(None, ["decoding.num_beams=2"], input="a", output="b"),
                               dataclasses.replace(CPU_PLAN, dtype="float64"))
    assert changed(before, after) == ["decoding.num_beams: 1 -> 2", "model.dtype: 'float32' -> 'float64'"]
    assert changed(before, before) == []


def _write(path: Path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def test_manifest_resolves_relative_uris_and_defaults_ids(tmp_path):
    (tmp_path / "m.csv").write_text("uri,speaker\naudio/a.wav,ann\n/abs/b.wav,bob\n")
    t = read_manifest(str(tmp_path / "m.csv"))
    assert t.column_names == ["id", "uri", "speaker"]
    assert t.column("uri").to_pylist() == [str(tmp_path / "audio/a.wav"), "/abs/b.wav"]
    assert t.column("id").to_pylist() == t.column("uri").to_pylist()


def test_manifest_jsonl_and_prefix(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": 1, "uri": "x.wav", "language": "en"}\n')
    assert read_manifest(str(tmp_path / "m.jsonl")).column("id").to_pylist() == ["1"]
    listing = read_manifest(str(GOOD) + "/")
    assert listing.num_rows == len(good_fixtures()) and {"size", "etag"} <= set(listing.column_names)


def test_manifest_keys_stay_as_written(tmp_path):
    """ids and uris are text: no number, boolean or null inference ever rewrites a user's key."""
    (tmp_path / "m.csv").write_text("id,uri,take\n001,a.wav,1\n1e3,b.wav,2\nTRUE,c.wav,3\nnan,d.wav,4\n")
    t = read_manifest(str(tmp_path / "m.csv"))
    assert t.column("id").to_pylist() == ["001", "1e3", "TRUE", "nan"]
    assert t.schema.field("take").type == pa.int64()  # other columns are still inferred
    (tmp_path / "m.jsonl").write_text(
        '{"id": "001", "uri": "a.wav", "n": 1}\n{"id": 1e3, "uri": "b.wav", "n": 2}\n{"id": 7, "uri": "c.wav", "n": 3}\n'
    )
    t = read_manifest(str(tmp_path / "m.jsonl"))
    assert t.column("id").to_pylist() == ["001", "1e3", "7"] and t.schema.field("n").type == pa.int64()
    (tmp_path / "e.csv").write_text("id,uri\n,a.wav\nb,b.wav\n")
    with pytest.raises(ManifestError, match=r"1 row\(s\) have an empty 'id'"):
        read_manifest(str(tmp_path / "e.csv"))


@pytest.mark.parametrize(
    "content, message",
    [
        ("id,path\n1,a.wav\n", r"m.csv: no 'uri' column"),
        ("id,uri\n1,a.wav\n1,b.wav\n", r"m.csv: duplicate ids \(1\), e.g. \['1'\]"),
        ("id,uri\n", r"m.csv: the manifest has no rows"),
        ('{"uri": "a.wav", "prompt": 42}\n', r"m.jsonl: column 'prompt' must hold text, it holds int64"),
        ('{"uri": "a.wav", "language": ["en"]}\n', r"m.jsonl: column 'language' must hold text, it holds list<"),
    ],
)
def test_bad_manifests_stop_the_job(tmp_path, content, message):
    name = "m.jsonl" if content.startswith("{") else "m.csv"
    (tmp_path / name).write_text(content)
    with pytest.raises(ManifestError, match=message):
        read_manifest(str(tmp_path / name))


def test_text_columns_of_a_csv_manifest_stay_text(tmp_path):
    (tmp_path / "m.csv").write_text("uri,prompt,task\na.wav,42,\nb.wav,Acme Corp,transcribe\n")
    t = read_manifest(str(tmp_path / "m.csv"))
    assert t.column("prompt").to_pylist() == ["42", "Acme Corp"] and t.schema.field("task").type == pa.string()


def test_unreadable_manifest_names_the_file(tmp_path):
    (tmp_path / "m.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match=r"m.parquet: cannot read the manifest"):
        read_manifest(str(tmp_path / "m.parquet"))
    with pytest.raises(ManifestError, match=r"missing.csv: cannot read the manifest"):
        read_manifest(str(tmp_path / "missing.csv"))


def test_run_folder_parts_done_ids_and_deduplicate(tmp_path):
    from jobs.state.run_folder import summarize

    folder = RunFolder(str(tmp_path / "run"))
    schema = output_schema(None)

    def rows(ids, error=None, kind=None):
        n = len(ids)
        return pa.table({"id": ids, "error": [error] * n, "error_kind": pa.array([kind] * n, pa.string()),
                         "duration_s": [1.0] * n})

    folder.write_part(rows(["a", "b"]))
    folder.write_part(rows(["b", "c"]))  # a retried task wrote b again
    folder.write_part(rows(["d", "e"], "fetch: the store was unreachable", "transient"))
    folder.write_part(pa.table({"id": ["f"], "error": ["decode: bad"], "duration_s": [0.0]}))  # an older part: no error_kind
    assert sorted(folder.done_ids().to_pylist()) == ["a", "b", "c", "f"]  # transient rows are tried again
    folder.write_part(rows(["d"]))  # resume: d is fine now, e still failing
    folder.write_part(rows(["e"], "fetch: the store was unreachable", "transient"))
    assert folder.deduplicate() == 3  # the second b, d's transient row, one of e's two
    keys = folder.keys()
    assert sorted(keys.column("id").to_pylist()) == ["a", "b", "c", "d", "e", "f"]
    assert {r["id"]: r["error_kind"] for r in keys.to_pylist()}["d"] is None  # the ok row won over the transient one
    assert not [p for p in (tmp_path / "run" / "data").iterdir() if p.name.startswith(".tmp")]
    assert list(schema.names) == list(CONTRACT_COLUMNS)
    summary = summarize(keys, pa.array(["a", "b", "c"]))
    assert (summary["ok"], summary["failed"], summary["skipped"], summary["rows"]) == (1, 2, 3, 6)
    assert (summary["transient"], summary["run_ok"], summary["run_failed"]) == (1, 4, 2)


def test_fetch_errors_name_the_object(tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 300_000)
    out = fetch_batch({"uri": [str(tmp_path / "nope.wav"), str(big), str(GOOD / "wav16k_mono.wav")]}, AudioConfig(max_bytes=250_000))
    assert out["error"][0] == f"fetch: object not found: {tmp_path / 'nope.wav'}"
    assert out["error"][1] == f"fetch: {big} is 300000 bytes, over the 250000 byte limit"
    assert out["error"][2] is None and out["audio"][2][:4] == b"RIFF"


def test_redact_strips_credentials():
    from asr_actor.errors import redact

    assert redact("s3://AKIA:secret@bucket/key") == "s3://bucket/key"
    assert json.dumps(redact("s3://bucket/key")) == '"s3://bucket/key"'


def test_writer_joins_pass_through_columns_from_the_frozen_manifest_with_their_types(tmp_path):
    from datetime import datetime, timezone

    from jobs.run.workers import WriteWorker

    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    manifest = pa.table({
        "id": ["a", "b", "c"], "uri": ["/x/a.wav", "/x/b.wav", "/x/c.wav"],
        "take": pa.array([1, None, 3], pa.int32()), "recorded": pa.array([when] * 3, pa.timestamp("ms", tz="UTC")),
    })
    folder = RunFolder(str(tmp_path / "run"))
    folder.create({"run_id": "r"}, manifest)
    writer = WriteWorker(folder.uri, output_schema(manifest.schema), {"model": "m", "config_fingerprint": "f", "run_id": "r"})
    # Results arrive in any order and carry only the columns the stages use.
    batch = pa.table({"id": ["c", "a"], "uri": ["/x/c.wav", "/x/a.wav"], "text": ["three", None],
                      "segments": pa.array([[], []], pa.list_(pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())]))),
                      "language": ["en", None], "duration_s": [1.0, 0.0], "error": [None, "decode: bad"]})
    summary = writer(batch)
    assert summary.column("id").to_pylist() == ["c", "a"]
    out = folder.read_all()
    assert out.schema.field("take").type == pa.int32()
    assert out.schema.field("recorded").type == pa.timestamp("ms", tz="UTC")
    rows = {r["id"]: r for r in out.to_pylist()}
    assert rows["c"]["take"] == 3 and rows["a"]["take"] == 1 and rows["c"]["recorded"] == when
    assert rows["a"]["error"] == "decode: bad" and rows["c"]["text"] == "three"


@pytest.mark.skipif(not hasattr(__import__("os"), "SCHED_IDLE"), reason="Linux scheduling policies")
def test_idle_priority_applies_to_the_calling_thread_only():
    import os
    import threading

    from jobs.run.cpu_priority import lower_cpu_priority

    seen = {}

    def work():
        lower_cpu_priority()
        seen["policy"] = os.sched_getscheduler(0)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["policy"] == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the test's own thread is untouched


def test_evaluate_on_a_run_with_no_rows_is_one_line_and_exit_2(tmp_path):
    folder = RunFolder(str(tmp_path / "run"))
    folder.create({"run_id": "run"}, pa.table({"id": pa.array([], pa.string()), "uri": pa.array([], pa.string())}))
    refs = tmp_path / "refs.csv"
    refs.write_text("id,text\n001,hello\n")
    proc = cli.run("evaluate", folder.uri, "--references", str(refs), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"asr-batch: {folder.uri}: the run has no transcript rows (data/ is empty or missing)"


def test_references_keep_ids_as_written(tmp_path):
    from jobs.report.evaluate import read_references

    (tmp_path / "refs.csv").write_text("id,text\n001,hello\n2,world\n")
    assert read_references(str(tmp_path / "refs.csv")) == {"001": "hello", "2": "world"}


def test_pools_fit_what_is_left_of_the_cluster():
    from jobs.run.capacity import describe_need, fitted, model_actors_that_fit

    stages = load_config(None, ["stages.transcribe.min_actors=2", "stages.transcribe.max_actors=4",
                                "stages.transcribe.num_cpus=2"], input="a", output="b").stages
    assert model_actors_that_fit(stages, {"CPU": 9.5}) == 4  # 9.5 - 1 (one CPU worker) = 8.5 -> 4
    assert model_actors_that_fit(stages, {"CPU": 4}) == 1
    whole = fitted(stages, {"CPU": 16})
    assert whole == stages  # room for everything: nothing changes
    shrunk = fitted(stages, {"CPU": 4})
    assert (shrunk.transcribe.min_actors, shrunk.transcribe.max_actors) == (1, 4)  # the pool may grow back
    assert (shrunk.prepare.concurrency, shrunk.write.num_cpus) == (1, 0.5)  # 4 - 2 (model) - 1 (CPU worker) = 1
    tight = fitted(stages, {"CPU": 3})  # one model actor and one CPU worker: the writer's share goes
    assert (tight.transcribe.min_actors, tight.prepare.concurrency, tight.write.num_cpus) == (1, 1, 0.0)
    assert fitted(stages, {"CPU": 2.5}) is None
    two = load_config(None, ["stages.prepare.concurrency=3"], input="a", output="b").stages  # 1 CPU per actor
    assert (fitted(two, {"CPU": 2}).prepare.concurrency, fitted(two, {"CPU": 2}).write.num_cpus) == (1, 0.0)
    assert fitted(two, {"CPU": 3.5}).prepare.concurrency == 2 and fitted(two, {"CPU": 3.5}).write.num_cpus == 0.5
    gpu = load_config(None, ["stages.transcribe.num_gpus=1", "stages.transcribe.max_actors=8"], input="a", output="b").stages
    assert model_actors_that_fit(gpu, {"CPU": 64, "GPU": 3}) == 3 and fitted(gpu, {"CPU": 64}) is None
    assert describe_need(gpu, {"CPU": 64}) == "one model actor and one CPU worker need 2 CPU, 1 GPU; the cluster has 64 CPU, 0 GPU"
    gib = 1024 ** 3  # stages.prepare.memory_gib: CPU workers also fit the cluster's memory resource
    held = load_config(None, ["stages.prepare.concurrency=8", "stages.prepare.memory_gib=3.5"], input="a", output="b").stages
    assert held.prepare.ray_memory == {"memory": int(3.5 * gib)} and two.prepare.ray_memory == {}
    assert fitted(held, {"CPU": 16, "memory": 8 * gib}).prepare.concurrency == 2  # 8 GiB / 3.5 GiB: two, not 8
    assert fitted(held, {"CPU": 16, "memory": 64 * gib}).prepare.concurrency == 8
    assert fitted(held, {"CPU": 16, "memory": 3 * gib}) is None
    assert describe_need(held, {"CPU": 16, "memory": 3 * gib}) == (
        "one model actor and one CPU worker need 2 CPU, 3.5 GiB memory; the cluster has 16 CPU, 0 GPU, 3.0 GiB memory")
    with pytest.raises(ConfigError, match=r"stages.prepare.memory_gib must be > 0"):
        load_config(None, ["stages.prepare.memory_gib=0"], input="a", output="b")


def test_lost_workers_are_told_from_the_job_own_failures():
    from jobs.run.ray_cluster import failure_cause, is_lost_worker

    class RayReport(Exception):
        pass

    node_lost = RayReport("ray.exceptions.ActorUnavailableError: The actor abc is unavailable: RpcError: Socket closed")
    model = RayReport("ray::MapWorker(...).__init__()\nsafetensors_rust.SafetensorError: bad header\n\n"
                      "The above exception was the direct cause of the following exception:\n\n"
                      "asr_actor.model.ModelLoadError: cannot load Whisper model 'x': bad header\n"
                      "ray.exceptions.UserCodeException: UDF failed to process a data block.")
    assert is_lost_worker(node_lost) and not is_lost_worker(model)
    assert failure_cause(model) == "ModelLoadError: cannot load Whisper model 'x': bad header"
    assert failure_cause(node_lost).startswith("ActorUnavailableError: The actor abc is unavailable")


def test_relative_paths_are_anchored_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, [], input="audio/m.csv", output="runs/", run_id="r")
    assert (cfg.input, cfg.output) == (str(tmp_path / "audio/m.csv"), str(tmp_path / "runs"))
    assert load_config(None, [], input="s3://b/in/", output="file:///shared/runs").output == "file:///shared/runs"


def test_an_output_that_cannot_hold_runs_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    proc = cli.run("run", "configs/local.yaml", "--output", str(tmp_path / "a-file" / "runs"), "--run-id", "r", timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"asr-batch: --output {tmp_path / 'a-file' / 'runs'}: cannot hold run folders "
                                   "(NotADirectoryError: Not a directory)")
