"""Config parsing and the device / dtype / attention policy (CPU side; the GPU side is in test_gpu.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from asr_actor.config import ConfigError, DecodingConfig, ModelConfig, TranscriberConfig, from_mapping
from asr_actor.model import ModelLoadError, cpu_half_dtypes, load_model, resolve_attention, resolve_device, resolve_dtype
from asr_actor.model_plan import plan_model
from asr_actor.model_source import ModelSourceError
from conftest import cpu_dtype


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


def test_cpu_policy_takes_a_half_dtype_only_where_the_cpu_multiplies_it():
    assert resolve_dtype("auto", "cpu", ("bfloat16",)) == "bfloat16"
    assert resolve_dtype("auto", "cpu", ()) == "float32"
    assert resolve_dtype("auto", "cpu", ("float16",)) == "float32"  # auto never picks float16 on CPU
    assert resolve_dtype("float32", "cpu", ("bfloat16",)) == "float32"
    assert resolve_dtype("bfloat16", "cpu", ("bfloat16",)) == "bfloat16"
    assert resolve_dtype("float16", "cpu", ("bfloat16", "float16")) == "float16"
    assert resolve_dtype("auto", "cuda", ()) == "float16" and resolve_dtype("bfloat16", "cuda:1", ()) == "bfloat16"
    with pytest.raises(ModelLoadError, match=r"bfloat16 on CPU: this CPU has no native bfloat16 \(AMX or AVX-512 BF16\)"):
        resolve_dtype("bfloat16", "cpu", ())
    with pytest.raises(ModelLoadError, match=r"float16 on CPU: this CPU has no native float16 \(AMX-FP16\).*use float32"):
        resolve_dtype("float16", "cpu", ("bfloat16",))


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="the kernel's CPU flags are read from /proc/cpuinfo")
def test_the_cpu_flags_agree_with_what_torch_reports():
    import torch

    native = cpu_half_dtypes()
    assert ("bfloat16" in native) == (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert ("float16" in native) == torch.cpu._is_amx_fp16_supported()


def test_the_cpu_flags_are_read_from_the_kernels_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_half_dtypes(str(info)) == ("bfloat16",)
    info.write_text("flags\t: fpu amx_bf16 amx_tile amx_fp16 amx_int8\n")
    assert cpu_half_dtypes(str(info)) == ("bfloat16", "float16")
    info.write_text("flags\t: fpu sse avx2 avx512f\n")
    assert cpu_half_dtypes(str(info)) == ()
    assert cpu_half_dtypes(str(tmp_path / "absent")) == ()  # not Linux: float32


def test_cpu_attention_is_sdpa():
    assert resolve_attention("auto", "cpu", "float32", None) == "sdpa"
    assert resolve_attention("eager", "cpu", "float32", None) == "eager"


def test_choices_that_cannot_work_fail_clearly():
    with pytest.raises(ModelLoadError, match="flash_attention_2 cannot be used: it needs a CUDA device"):
        resolve_attention("flash_attention_2", "cpu", "float32", None)
    with pytest.raises(ModelLoadError, match="flash_attention_2 cannot be used: it needs float16 or bfloat16"):
        resolve_attention("flash_attention_2", "cuda", "float32", None)
    with pytest.raises(ModelLoadError, match="below"):
        resolve_attention("flash_attention_2", "cuda", "float16", (7, 5))
    with pytest.raises(ModelLoadError, match="float16 on CPU"):
        resolve_dtype("float16", "cpu", ())
    with pytest.raises(ModelLoadError, match="no CUDA device is visible"):
        resolve_device("cuda", cuda_available=False)
    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"


def test_auto_attention_takes_flash_attention_only_where_a_gpu_proves_it_runs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn" else real(name, *a))
    assert resolve_attention("auto", "cuda", "float16", (9, 0)) == "flash_attention_2"
    assert resolve_attention("auto", "cuda", "float16", (7, 5)) == "sdpa"  # too old
    assert resolve_attention("auto", "cuda", "float16", None) == "sdpa"  # no GPU visible: the driver cannot check
    assert resolve_attention("flash_attention_2", "cuda", "float16", None) == "flash_attention_2"  # the actor checks


def test_the_driver_plans_the_model_from_its_small_files(offline_model_dir):
    cpu = plan_model(ModelConfig(id=str(offline_model_dir)), gpus=False)
    assert (cpu.device, cpu.dtype, cpu.attention, cpu.multilingual) == ("cpu", cpu_dtype(), "sdpa", False)
    assert cpu.log_mel.n_mels == 80 and cpu.revision is None and cpu.weights_id
    gpu = plan_model(ModelConfig(id=str(offline_model_dir)), gpus=True)
    assert (gpu.device, gpu.dtype, gpu.attention) == ("cuda", "float16", "sdpa")
    assert gpu.pinned(ModelConfig(id="x")) == ModelConfig(id="x", device="cuda", dtype="float16", attention="sdpa")
    assert plan_model(ModelConfig(), gpus=False).weights_id.endswith("-c2")  # the offline default: source hash
    with pytest.raises(ModelLoadError, match="the model actors get no GPU"):
        plan_model(ModelConfig(id=str(offline_model_dir), device="cuda"), gpus=False)
    if "float16" not in cpu_half_dtypes():
        with pytest.raises(ModelLoadError, match="float16 on CPU"):
            plan_model(ModelConfig(id=str(offline_model_dir), dtype="float16"), gpus=False)


def test_planning_names_what_is_missing(tmp_path):
    with pytest.raises(ModelSourceError, match="model folder './nowhere' does not exist"):
        plan_model(ModelConfig(id="./nowhere"), gpus=False)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelSourceError, match="no .safetensors weights"):
        plan_model(ModelConfig(id=str(tmp_path)), gpus=False)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match=r"preprocessor_config.json: no such file"):
        plan_model(ModelConfig(id=str(tmp_path)), gpus=False)


def test_loads_a_local_folder_and_reports_what_it_loaded(offline_model_dir):
    loaded = load_model(ModelConfig(id=str(offline_model_dir)))
    assert (loaded.info.device, loaded.info.dtype, loaded.info.attention) == ("cpu", cpu_dtype(), "sdpa")
    assert loaded.model.dtype == getattr(torch, cpu_dtype()) and not loaded.model.training
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


@pytest.mark.parametrize("name, hub", [("tiny.en", "openai/whisper-tiny.en"), ("large-v3", "openai/whisper-large-v3"),
                                       ("large", "openai/whisper-large-v3"), ("turbo", "openai/whisper-large-v3-turbo"),
                                       ("./large-v3", "./large-v3"), ("offline:tiny.en", "offline:tiny.en")])
def test_whisper_short_names_read_as_their_hub_ids(name, hub):
    assert ModelConfig(id=name).id == hub
