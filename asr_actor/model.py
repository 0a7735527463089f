"""Load one Whisper model: where it comes from, and the device, dtype and attention policy.

Policy: CUDA -> float16 (bfloat16 selectable); CPU -> bfloat16 where the CPU multiplies it
natively (AMX or AVX-512 BF16, from the kernel's CPU flags), float32 elsewhere. Attention ``auto`` takes
``flash_attention_2`` when ``flash_attn`` imports and a visible GPU can run it (compute
capability 8.0+, half precision), else ``sdpa``. An explicit choice that cannot work
fails with a message saying why. The same functions serve the job's driver, which has
no GPU to look at (:mod:`asr_actor.model_plan`): it decides once and the model actors
load exactly that. Weights load from safetensors only and never with remote code.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from asr_actor.config import ModelConfig
from asr_actor.dummy import build_model, label
from asr_actor.errors import AsrBatchError, describe
from asr_actor.guards import install as install_guards
from asr_actor.model_source import HUB_UNREACHABLE, hub_unreachable, resolve_model_source
from asr_actor.storage import Store
from asr_actor.no_speech import install as install_no_speech
from asr_actor.passes import install as install_passes
from asr_actor.sampling import install as install_sampler
from asr_actor.offline.hf_files import is_multilingual
from asr_actor.timestamp_rules import install as install_timestamp_rules

log = logging.getLogger(__name__)

FLASH_ATTENTION_MIN_CAPABILITY = (8, 0)  # Ampere; flash-attn 2 does not run on older GPUs
HALF = ("float16", "bfloat16")


class ModelLoadError(AsrBatchError):
    """The model cannot be loaded as configured; the message says what to change."""


@dataclass(frozen=True)
class ModelInfo:
    """What was actually loaded: the device, dtype and attention the model runs with."""

    model_id: str  # as configured (hub id, folder, URL or offline:tiny.en); dummy:<id> for dummy weights
    revision: str | None  # as configured, or the commit hash the hub resolved
    device: str
    dtype: str
    attention: str
    multilingual: bool
    dummy_tokens: int | None = None  # dummy weights: tokens decoded per window (model.dummy_tokens); None: real weights


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # WhisperForConditionalGeneration, in eval mode on its device
    processor: Any  # WhisperProcessor
    info: ModelInfo


def resolve_device(requested: str, cuda_available: bool) -> str:
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested.startswith("cuda") and not cuda_available:
        raise ModelLoadError(f"model.device is {requested!r} but no CUDA device is visible; use 'auto' or 'cpu'")
    return requested


# The CPU flags (as Linux names them in /proc/cpuinfo) that give a half dtype native matrix units.
CPU_HALF_FLAGS = {"bfloat16": ("amx_bf16", "avx512_bf16"), "float16": ("amx_fp16",)}
CPU_HALF_UNITS = {"bfloat16": "AMX or AVX-512 BF16", "float16": "AMX-FP16"}
CPUINFO = "/proc/cpuinfo"


def cpu_flags(cpuinfo: str = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the Linux kernel lists them; empty where they cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            line = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def cpu_half_dtypes(cpuinfo: str = CPUINFO) -> tuple[str, ...]:
    """The half dtypes this machine's CPU multiplies natively, from the kernel's CPU flags.

    Read without torch, so the driver (which never imports it) and the model actors decide
    alike; () where the flags cannot be read (not Linux): float32 there.
    """
    flags = cpu_flags(cpuinfo)
    return tuple(dtype for dtype, wanted in CPU_HALF_FLAGS.items() if flags.intersection(wanted))


def resolve_dtype(requested: str, device: str, cpu_half: tuple[str, ...] | None = None) -> str:
    """The dtype to load: ``cpu_half`` is :func:`cpu_half_dtypes` of the CPU that will run it (None: this one's)."""
    if device.startswith("cuda"):
        return "float16" if requested == "auto" else requested
    if cpu_half is None:
        cpu_half = cpu_half_dtypes()
    if requested == "auto":
        return "bfloat16" if "bfloat16" in cpu_half else "float32"
    if requested in HALF and requested not in cpu_half:
        raise ModelLoadError(f"model.dtype {requested} on CPU: this CPU has no native {requested} "
                             f"({CPU_HALF_UNITS[requested]}); use float32 or auto")
    return requested


def cuda_capability(device: str) -> tuple[int, int] | None:
    """The compute capability of ``device``, or None when it is not a CUDA device visible here."""
    if not device.startswith("cuda"):
        return None
    import torch

    return tuple(torch.cuda.get_device_capability(torch.device(device))) if torch.cuda.is_available() else None


def flash_attention_problem(device: str, dtype: str, capability: tuple[int, int] | None) -> str | None:
    """Why flash_attention_2 cannot run, or None when it can (or when no GPU is visible to check)."""
    if not device.startswith("cuda"):
        return "it needs a CUDA device"
    if dtype not in HALF:
        return f"it needs float16 or bfloat16, not {dtype}"
    if capability is None:
        return None  # no GPU visible here (the driver): the model actor checks the rest
    if capability < FLASH_ATTENTION_MIN_CAPABILITY:
        return f"the GPU's compute capability {capability} is below {FLASH_ATTENTION_MIN_CAPABILITY}"
    if importlib.util.find_spec("flash_attn") is None:
        return "the flash-attn package is not installed (pip install 'asr-batch[gpu]')"
    return None


def resolve_attention(requested: str, device: str, dtype: str, capability: tuple[int, int] | None) -> str:
    """``auto``: flash_attention_2 where it is known to run (a visible capable GPU), else sdpa."""
    problem = flash_attention_problem(device, dtype, capability)
    if requested == "auto":
        return "flash_attention_2" if capability is not None and problem is None else "sdpa"
    if requested == "flash_attention_2" and problem:
        raise ModelLoadError(f"model.attention flash_attention_2 cannot be used: {problem}")
    return requested


def english_only_problem(model: str, task: str | None, language: str | None, key_prefix: str = "") -> str | None:
    """Why English-only ``model`` cannot take ``task`` and ``language``, or None when it can.

    ``key_prefix``: where the two came from, as the message names them: ``""`` for a row's
    ``task`` and ``language`` (the transcriber's error rows), ``"decoding."`` for the config's
    (the driver's preflight, which also names the task's key).
    """
    if task == "translate":
        return f"model {model} is English-only and cannot translate" + (f" ({key_prefix}task)" if key_prefix else "")
    if language not in (None, "en"):
        return f"model {model} is English-only, cannot take {key_prefix}language {language!r}"
    return None


def _check_hardware(device: str, dtype: str) -> None:
    import torch

    if dtype == "bfloat16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise ModelLoadError("model.dtype bfloat16: this GPU does not support it; use float16")


def load_model(cfg: ModelConfig, store: Store = Store()) -> LoadedModel:
    """Load model and processor as ``cfg`` asks (an object-store folder read through ``store``);
    raise :class:`ModelLoadError` when it cannot."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    device = resolve_device(cfg.device, torch.cuda.is_available())
    dtype = resolve_dtype(cfg.dtype, device)
    _check_hardware(device, dtype)
    attention = resolve_attention(cfg.attention, device, dtype, cuda_capability(device))
    source = resolve_model_source(cfg, store)
    common: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": False}
    if source.local:
        common["local_files_only"] = True
    dummy = cfg.dummy
    try:
        if dummy:
            model = build_model(source.path, device, dtype, attention)
        else:
            model = WhisperForConditionalGeneration.from_pretrained(
                source.path,
                dtype=getattr(torch, dtype),
                attn_implementation=attention,
                low_cpu_mem_usage=True,
                use_safetensors=True,
                **common,
            )
        processor = WhisperProcessor.from_pretrained(source.path, **common)
    except Exception as exc:  # noqa: BLE001 - unreadable weights or configs, of any library's error type
        cause = HUB_UNREACHABLE if not source.local and hub_unreachable(exc) else describe(exc)
        raise ModelLoadError(f"cannot load Whisper model {cfg.id!r}: {cause}") from exc
    model.to(device).eval()
    passes = install_passes(model)
    install_guards(model, processor.tokenizer, passes, install_sampler(model, passes), judge_only=dummy)
    install_no_speech(model)
    install_timestamp_rules(model)
    info = ModelInfo(
        model_id=label(cfg),
        revision=cfg.revision or getattr(model.config, "_commit_hash", None),
        device=device,
        dtype=dtype,
        attention=model.config._attn_implementation,
        multilingual=is_multilingual(model.config.vocab_size),  # the driver's rule (asr_actor.model_plan)
        dummy_tokens=cfg.dummy_tokens if dummy else None,
    )
    log.info("loaded %s on %s as %s with %s attention", info.model_id, device, dtype, info.attention)
    return LoadedModel(model=model, processor=processor, info=info)

