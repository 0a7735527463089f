"""Config parsing and the device / dtype / attention policy (CPU side; the GPU side is in test_gpu.py)."""

from __future__ import annotations

import shutil

import pytest
import torch

from asr_actor.config import ConfigError, DecodingConfig, ModelConfig, TranscriberConfig, from_mapping
from asr_actor.model import ModelLoadError, load_model, resolve_attention, resolve_device, resolve_dtype


def test_from_mapping_builds_nested_frozen_config():
    cfg = from_mapping(TranscriberConfig, {"model": {"id": "x", "dtype": "float32"}, "audio": {"max_duration_s": 60}})
    assert cfg.model.id == "x" and cfg.audio.max_duration_s == 60.0 and isinstance(cfg.audio.max_duration_s, float)
    assert cfg.decoding == DecodingConfig()
    with pytest.raises(Exception):
        cfg.model.id = "y"  # frozen


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model": {"idd": "x"}}, r"model: unknown key\(s\) \['idd'\]"),
        ({"decoding": {"batch_size": "8"}}, r"decoding.batch_size: expected int, got str"),
        ({"decoding": {"batch_size": 0}}, r"decoding.batch_size must be >= 1"),
        ({"decoding": {"long_form": "vad"}}, r"decoding.long_form 'vad' is not one of"),
        ({"model": {"attention": "flash"}}, r"model.attention 'flash' is not one of"),
        ({"model": {"device": "tpu"}}, r"model.device 'tpu'"),
        ({"decoding": {"num_beams": True}}, r"decoding.num_beams: expected int, got bool"),
        ({"audio": "long"}, r"audio: expected a mapping"),
    ],
)
def test_bad_config_names_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(TranscriberConfig, data)


def test_cpu_policy_is_float32_with_sdpa():
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_attention("auto", "cpu", "float32") == "sdpa"
    assert resolve_attention("eager", "cpu", "float32") == "eager"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the messages a CPU-only machine gives")
def test_choices_that_cannot_work_on_cpu_fail_clearly():
    with pytest.raises(ModelLoadError, match="flash_attention_2 cannot be used: it needs a CUDA device"):
        resolve_attention("flash_attention_2", "cpu", "float32")
    with pytest.raises(ModelLoadError, match="float16 on CPU"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(ModelLoadError, match="no CUDA device is visible"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_loads_a_local_folder_and_reports_what_it_loaded(offline_model_dir):
    loaded = load_model(ModelConfig(id=str(offline_model_dir)))
    assert (loaded.info.device, loaded.info.dtype, loaded.info.attention) == ("cpu", "float32", "sdpa")
    assert loaded.model.dtype == torch.float32 and not loaded.model.training
    eager = load_model(ModelConfig(id=str(offline_model_dir), attention="eager"))
    assert eager.info.attention == "eager"


def test_pickled_weights_are_refused(offline_model_dir, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(offline_model_dir / name, folder / name)
    torch.save(load_file(offline_model_dir / "model.safetensors"), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot load Whisper model"):
        load_model(ModelConfig(id=str(folder)))
