"""What the job will load, decided once in the driver before any work and without any weight.

The driver may have no GPU and must not copy gigabytes of weights just to look, so it
reads the model's small files (:func:`asr_actor.model_source.read_model_files`) and
applies the same policy as :mod:`asr_actor.model` to the resources the model actors
will get. The :class:`ModelPlan` it makes is recorded in ``run.json``, hashed into the
config fingerprint, gives the CPU stage its log-mel settings, and is pinned into every
model actor's config (device, dtype, attention, hub commit), so every actor of a run
loads the same thing and checks that its processor agrees.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any

from asr_actor.config import ModelConfig
from asr_actor.features import LogMel
from asr_actor.model import ModelLoadError, cuda_capability, resolve_attention, resolve_dtype
from asr_actor.model_source import read_model_files
from asr_actor.offline.hf_files import is_multilingual
from asr_actor.storage import Store


@dataclass(frozen=True)
class ModelPlan:
    """The resolved model: recorded in run.json and hashed into the fingerprint."""

    model_id: str  # as configured
    weights_id: str  # identity of the weights (hub commit, source hash, ETags or sizes and mtimes)
    revision: str | None  # the hub commit every actor loads; None off the hub
    device: str  # "cpu" or "cuda" (Ray gives each actor its own GPU)
    dtype: str
    attention: str
    multilingual: bool
    log_mel: LogMel  # the feature settings of preprocessor_config.json
    load_format: str = "auto"  # model.load_format: "dummy" = random weights of the model's shape
    dummy_tokens: int | None = None  # dummy weights: tokens decoded per window; None with real weights

    def pinned(self, cfg: ModelConfig) -> ModelConfig:
        """``cfg`` with nothing left to choose: what every model actor loads."""
        return dataclasses.replace(
            cfg, device=self.device, dtype=self.dtype, attention=self.attention, revision=self.revision or cfg.revision
        )

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan_model(cfg: ModelConfig, gpus: bool, store: Store = Store()) -> ModelPlan:
    """Resolve ``cfg`` for model actors that get a GPU each (``gpus``) or none; its files are read through ``store``.

    Raises :class:`asr_actor.errors.AsrBatchError` subclasses with one-line messages: a
    model whose files cannot be read, a device the actors will not have, a dtype or
    attention that cannot run there.
    """
    files = read_model_files(cfg, store)
    if cfg.device.startswith("cuda") and not gpus:
        raise ModelLoadError(f"model.device is {cfg.device!r} but the model actors get no GPU (stages.transcribe.num_gpus)")
    device = "cuda" if gpus and cfg.device != "cpu" else "cpu"
    # CPU actors: the driver's CPU stands for theirs (a cluster whose CPU workers differ sets model.dtype).
    dtype = resolve_dtype(cfg.dtype, device)
    # Only a GPU visible here can prove flash-attn runs; without one "auto" plans sdpa.
    capability = cuda_capability(device) if importlib.util.find_spec("flash_attn") else None
    return ModelPlan(
        model_id=cfg.id,
        weights_id=files.weights_id,
        revision=files.revision,
        device=device,
        dtype=dtype,
        attention=resolve_attention(cfg.attention, device, dtype, capability),
        multilingual=is_multilingual(int(files.config.get("vocab_size", 0))),
        log_mel=LogMel.from_preprocessor_config(files.preprocessor),
        load_format=cfg.load_format,
        dummy_tokens=cfg.dummy_tokens if cfg.dummy else None,
    )
