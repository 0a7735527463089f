"""The driver's checks before any run folder is written, and what they decide.

A run that cannot work must exit 2 with one line and leave nothing behind, so before
planning writes anything the driver resolves the model from its small files (source,
feature settings, device, dtype, attention: :func:`asr_actor.model_plan.plan_model`),
checks the config's task and language against it, and computes the fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asr_actor.config import TranscriberConfig
from asr_actor.model import ModelLoadError, english_only_problem
from asr_actor.model_plan import ModelPlan, plan_model
from asr_actor.vad import check_available
from jobs.config import JobConfig
from jobs.run.fingerprint import fingerprint, fingerprint_inputs


@dataclass(frozen=True)
class Checked:
    """A job config that passed preflight, with what preflight decided."""

    plan: ModelPlan
    fingerprint_inputs: dict[str, Any]
    fingerprint: str

    def transcriber_config(self, cfg: JobConfig) -> TranscriberConfig:
        """What every model actor loads: the config with the plan's choices pinned."""
        return TranscriberConfig(model=self.plan.pinned(cfg.model), decoding=cfg.decoding, audio=cfg.audio)


def _check_task(cfg: JobConfig, plan: ModelPlan) -> None:
    if plan.multilingual:
        return
    problem = english_only_problem(cfg.model.id, cfg.decoding.task, cfg.decoding.language, key_prefix="decoding.")
    if problem:
        raise ModelLoadError(problem)


def preflight(cfg: JobConfig) -> Checked:
    """Resolve and check ``cfg``; raise an ``AsrBatchError`` with one line when the run cannot work."""
    check_available(cfg.audio)
    plan = plan_model(cfg.model, gpus=cfg.stages.transcribe.num_gpus > 0, store=cfg.storage.store)
    _check_task(cfg, plan)
    inputs = fingerprint_inputs(cfg, plan)
    return Checked(plan, inputs, fingerprint(inputs))
