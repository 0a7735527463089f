"""Dummy weights: real shapes and token ids, seeded random weights built here, one fixed-length pass per window."""

from __future__ import annotations

import json

import pytest

import cli
from asr_actor.config import WHISPER_NAMES, ConfigError, DecodingConfig, ModelConfig, TranscriberConfig
from asr_actor.dummy import DummyModelError, architecture, dummy_folder, label, named_architecture
from asr_actor.features import LogMel
from asr_actor.guards import SIGNALS
from asr_actor.model_plan import ModelPlan, plan_model
from asr_actor.offline.vocabulary import layout
from conftest import good_fixtures
from jobs.config import load_config
from jobs.run.fingerprint import fingerprint, fingerprint_inputs

TOKENS = 12


@pytest.mark.parametrize("vocab_size, eos, no_timestamps, transcribe, languages", [
    (51864, 50256, 50362, 50358, 99),  # tiny.en ... medium.en
    (51865, 50257, 50363, 50359, 99),  # tiny ... large-v2
    (51866, 50257, 50364, 50360, 100),  # large-v3, large-v3-turbo
])
def test_the_vocabulary_has_whispers_published_ids(vocab_size, eos, no_timestamps, transcribe, languages):
    vocab, specials = layout(vocab_size)
    assert len(vocab) == vocab_size and vocab.index("<|endoftext|>") == eos
    assert vocab.index("<|startoftranscript|>") == eos + 1 and vocab.index("<|notimestamps|>") == no_timestamps
    assert vocab.index("<|transcribe|>") == transcribe and vocab[no_timestamps + 1] == "<|0.00|>"
    assert vocab[-1] == "<|30.00|>" and len(specials) == 2 + languages + 6
    with pytest.raises(ValueError, match="not 51000"):
        layout(51000)


def test_every_openai_name_has_a_shape_and_large_v3_has_its_published_size():
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    for name, hub_id in WHISPER_NAMES.items():
        assert architecture(ModelConfig(id=name, load_format="dummy")) == named_architecture(hub_id.split("whisper-")[1])

    def parameters(name: str) -> int:
        with torch.device("meta"):
            model = WhisperForConditionalGeneration(WhisperConfig(**named_architecture(name)))
        return sum(p.numel() for p in model.parameters())

    assert parameters("large-v3") == 1_543_490_560 and parameters("large-v3-turbo") == 808_878_080
    assert named_architecture("large-v3")["num_mel_bins"] == 128 and named_architecture("medium.en")["vocab_size"] == 51864


def test_any_other_model_takes_its_shape_from_config_json(offline_model_dir, tmp_path):
    assert architecture(ModelConfig(id=str(offline_model_dir), load_format="dummy")) == named_architecture("tiny.en")
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 8}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(LogMel().to_preprocessor_config()))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(DummyModelError, match=r"config.json lacks \['vocab_size', 'num_mel_bins', 'encoder_layers'"):
        architecture(ModelConfig(id=str(tmp_path), load_format="dummy"))


def test_config_refusals():
    with pytest.raises(ConfigError, match=r"^model.load_format 'random' is not one of \('auto', 'dummy'\)$"):
        ModelConfig(load_format="random")
    with pytest.raises(ConfigError, match=r"^model.dummy_tokens must be in \[1, 440\], got 0$"):
        ModelConfig(dummy_tokens=0)
    with pytest.raises(ConfigError, match="dummy decodes fixed-length windows: use decoding.long_form: chunked"):
        TranscriberConfig(model=ModelConfig(load_format="dummy"), decoding=DecodingConfig(long_form="sequential"))


def _dummy_transcriber(cache) -> "Transcriber":  # noqa: F821 - imported lazily (torch)
    from asr_actor.transcriber import Transcriber

    return Transcriber(TranscriberConfig(
        model=ModelConfig(id="tiny", load_format="dummy", dummy_tokens=TOKENS, cache_dir=str(cache)),
        decoding=DecodingConfig(batch_size=4),
    ))


def test_a_dummy_model_decodes_every_window_once_with_the_set_token_count(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the hub
    t = _dummy_transcriber(tmp_path / "cache")
    assert t.info.model_id == "dummy:openai/whisper-tiny" and t.info.multilingual and t.info.dummy_tokens == TOKENS
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # the weights were drawn, not stored
    passes: list[int] = []
    judge = t.loaded.model._need_fallback

    def counting(sequence, outputs, index, *args):
        decision = judge(sequence, outputs, index, *args)
        passes.append(len(outputs[index][SIGNALS].token_probs))
        return decision

    t.loaded.model._need_fallback = counting
    windows: list[int] = []
    t.on_windows = windows.append
    paths = good_fixtures()[:3]
    batch = {"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths]}
    out = t(batch)
    assert out["error"] == [None] * len(paths) and all(out["text"])
    assert passes == [TOKENS] * sum(windows) and sum(windows) >= len(paths)

    again = _dummy_transcriber(tmp_path / "cache")  # the same seed: the same weights, the same text
    again_out = again(batch)
    assert again_out["text"] == out["text"]


def test_the_plan_and_the_fingerprint_name_dummy_weights(tmp_path):
    cfg = ModelConfig(id="large-v3-turbo", load_format="dummy", cache_dir=str(tmp_path))
    plan = plan_model(cfg, gpus=True)
    assert (plan.load_format, plan.dummy_tokens, plan.device, plan.dtype) == ("dummy", 100, "cuda", "float16")
    assert plan.weights_id == dummy_folder(cfg).name and plan.weights_id.startswith("dummy-seed0-")
    assert plan.multilingual and plan.log_mel.n_mels == 128 and label(cfg) == "dummy:openai/whisper-large-v3-turbo"
    real = ModelPlan(model_id="m", weights_id="w1", revision=None, device="cpu", dtype="float32", attention="sdpa",
                     multilingual=False, log_mel=LogMel())
    default = load_config(None, [], input="a", output="b")
    assert fingerprint(fingerprint_inputs(default, real)) == "43974a20a0007f55"  # runs with real weights keep their hash
    inputs = fingerprint_inputs(default, plan)
    assert (inputs["model"]["load_format"], inputs["model"]["dummy_tokens"]) == ("dummy", 100)


@pytest.mark.slow
def test_a_dummy_job_marks_its_rows_and_evaluate_refuses_it(asr_cache, tmp_path):
    import pyarrow.parquet as pq

    from servers import job_env, run_local_job

    paths = good_fixtures()[:2]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": p.stem, "uri": str(p)}) + "\n" for p in paths))
    proc = run_local_job(asr_cache, tmp_path / "m.jsonl", tmp_path / "runs", "d", "model.id=tiny",
                         "model.load_format=dummy", f"model.dummy_tokens={TOKENS}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pq.read_table(tmp_path / "runs/d/data").to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(p.stem for p in paths)
    assert {r["model"] for r in rows} == {"dummy:openai/whisper-tiny"} and all(r["error"] is None for r in rows)
    recorded = json.loads((tmp_path / "runs/d/run.json").read_text())["model"]
    assert (recorded["load_format"], recorded["dummy_tokens"]) == ("dummy", TOKENS)
    refs = tmp_path / "refs.jsonl"
    refs.write_text("".join(json.dumps({"id": p.stem, "text": "hello"}) + "\n" for p in paths))
    evaluated = cli.run("evaluate", str(tmp_path / "runs/d"), "--references", str(refs), env=job_env({}, asr_cache),
                        timeout=120)
    assert evaluated.returncode == 2 and evaluated.stdout == ""
    assert evaluated.stderr.strip().splitlines() == [
        f"asr-batch: {tmp_path / 'runs/d'}: the run used dummy weights (dummy:openai/whisper-tiny); their text means nothing"]
