"""The job's config: YAML -> frozen :class:`JobConfig`, validated before ``ray.init()``.

:class:`JobConfig` is the transcriber's config (``model``, ``decoding``, ``audio``)
plus where to read and write and how the stages run. ``--set key=value`` overrides
are applied to the YAML mapping first (the value is parsed as YAML, so
``--set decoding.batch_size=32`` is an int), then the whole thing goes through the
same typed, unknown-key-rejecting builder as the transcriber's config.

Three sizes, three meanings: ``stages.prepare.batch_size`` is files per CPU-stage call,
``stages.transcribe.batch_size`` files per model-actor call, ``decoding.batch_size``
30 s windows per ``generate()``; ``stages.write.batch_size`` is rows per Parquet part.

The config is a YAML file, or the name of a built-in one (``local``, ``cluster``, ``gpu``:
the repository's ``configs/NAME.yaml``, which a wheel carries too, see :mod:`jobs.shipped`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from asr_actor.config import ConfigError, TranscriberConfig, from_mapping, require
from asr_actor.errors import describe
from asr_actor import storage
from asr_actor.retry import DEFAULT_RETRY_S
from asr_actor.storage import Store
from jobs.report.iceberg_target import parse_target
from jobs.shipped import builtin_configs


@dataclass(frozen=True)
class PrepareStageConfig:
    """``stages.prepare``: the CPU stage (fetch, decode, windows and log-mel features)."""

    batch_size: int = 4  # files per call of a CPU worker
    num_cpus: float = 1.0  # per CPU worker
    concurrency: int = 2  # CPU workers at most, preparing ahead of the model
    # true: the CPU workers take only CPU time nothing else wants (Linux SCHED_IDLE), so on
    # a CPU-only node they fill the model's idle moments instead of slowing it down
    idle_priority: bool = False
    # GiB of Ray's memory resource per CPU worker (None: not reserved): for long files, so that Ray
    # places no more workers on a node than its memory holds (README, Running on a cluster)
    memory_gib: float | None = None

    def __post_init__(self) -> None:
        require(self.batch_size >= 1 and self.concurrency >= 1, "stages.prepare: batch_size and concurrency >= 1")
        require(self.memory_gib is None or self.memory_gib > 0, "stages.prepare.memory_gib must be > 0 (or null)")

    @property
    def ray_memory(self) -> dict[str, int]:
        """``memory=`` for Ray (bytes), when ``memory_gib`` is set."""
        return {} if self.memory_gib is None else {"memory": int(self.memory_gib * 1024 ** 3)}


@dataclass(frozen=True)
class TranscribeStageConfig:
    """``stages.transcribe``: an autoscaling pool of model actors, one model each."""

    min_actors: int = 1
    max_actors: int = 1
    batch_size: int = 8  # files per model-actor call; their windows are packed by decoding.batch_size
    num_gpus: float = 0.0  # per actor; 1 on GPU nodes
    num_cpus: float = 1.0  # per actor; on CPU it is also the actor's torch thread count

    def __post_init__(self) -> None:
        require(1 <= self.min_actors <= self.max_actors, "stages.transcribe: need 1 <= min_actors <= max_actors")
        require(self.batch_size >= 1, "stages.transcribe.batch_size must be >= 1")


@dataclass(frozen=True)
class WriteStageConfig:
    """``stages.write``: the writer, one Parquet part per batch of results."""

    batch_size: int = 16  # rows per Parquet part
    num_cpus: float = 0.5

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "stages.write.batch_size must be >= 1")


@dataclass(frozen=True)
class StagesConfig:
    prepare: PrepareStageConfig = field(default_factory=PrepareStageConfig)
    transcribe: TranscribeStageConfig = field(default_factory=TranscribeStageConfig)
    write: WriteStageConfig = field(default_factory=WriteStageConfig)


@dataclass(frozen=True)
class StorageConfig:
    """How long storage calls ride out a store that does not answer."""

    # s each storage call (listing, fetch, part write, run.json, _SUCCESS) retries transient
    # errors (refused, reset, timeouts, 5xx, throttling) with backoff before giving up
    retry_s: float = DEFAULT_RETRY_S

    def __post_init__(self) -> None:
        require(self.retry_s >= 0, "storage.retry_s must be >= 0")

    @property
    def store(self) -> Store:
        """What every read and write of the run goes through, with these retries."""
        return Store(self.retry_s)


@dataclass(frozen=True)
class IncrementalConfig:
    """``--incremental``: take only the inputs the complete runs under the same output root lack."""

    enabled: bool = False  # also: incremental: true in the YAML, or --incremental
    max_attempts: int = 3  # tries of a source that keeps failing; after that its error row stays

    def __post_init__(self) -> None:
        require(self.max_attempts >= 1, "incremental.max_attempts must be >= 1")


@dataclass(frozen=True)
class RayConfig:
    """Where the job runs, and how it rides out lost workers and nodes."""

    address: str | None = None  # None: RAY_ADDRESS if set (ray job submit), else a local cluster
    num_cpus: int | None = None  # logical CPUs of a local cluster; more than cores leaves room for Ray's helpers
    no_progress_timeout_s: float = 900.0  # fail instead of hanging when no stage makes progress
    # Ray's in-place restarts of a dead actor (-1: forever, Ray Data's default). 0: a lost actor
    # fails the attempt and the job recovers by planning the remaining files on what is left; a
    # restart Ray cannot place (its node is gone, the rest is full) would wait forever instead.
    actor_restarts: int = 0
    recoveries: int = 3  # times one run plans its remaining files again after losing a worker or node
    # s to wait, after a loss, for the cluster to have room for one model actor and the other
    # stages again (an autoscaler adding a node) before stopping with one line
    capacity_wait_s: float = 60.0

    def __post_init__(self) -> None:
        require(self.actor_restarts >= -1, "ray.actor_restarts must be -1 (forever) or >= 0")
        require(self.recoveries >= 0 and self.capacity_wait_s >= 0, "ray.recoveries and ray.capacity_wait_s must be >= 0")


@dataclass(frozen=True, kw_only=True)
class JobConfig(TranscriberConfig):
    """One run of the job: the transcriber's config plus input, output, stages and Ray."""

    input: str  # manifest (Parquet, CSV, JSONL) or prefix of audio objects; any fsspec URL or path
    output: str  # run root: the run folder is <output>/<run_id>/
    run_id: str | None = None  # None: a UTC timestamp
    stages: StagesConfig = field(default_factory=StagesConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    incremental: IncrementalConfig = field(default_factory=IncrementalConfig)
    # s a run's lock on its output root stays valid without a heartbeat (the driver renews it
    # every third of that); an older lock is stale and --break-lock may take it
    lock_ttl_s: float = 300.0
    progress_s: float = 10.0  # s between plain progress lines when stderr is not a terminal (cron, ray job logs)
    # iceberg://CATALOG/NAMESPACE.TABLE: at the end of each complete run, upsert its rows (and those of any
    # complete run under the root not yet published there) into that Iceberg table by id; None: no table
    publish: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.publish is not None:
            parse_target(self.publish)  # the form is checked at load: a typo fails before any work, not after it

    def transcriber(self) -> TranscriberConfig:
        """Just the transcriber's part (what a model actor is given)."""
        return TranscriberConfig(model=self.model, decoding=self.decoding, audio=self.audio)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``key.sub=value`` strings applied onto a copy of ``data``."""
    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def config_file(name: str | Path) -> Path:
    """The YAML file ``name`` means: a bare name (no ``/``, no suffix) is a built-in config, anything else a path."""
    if isinstance(name, Path) or "/" in name or Path(name).suffix:
        return Path(name)
    builtin = builtin_configs()
    if name not in builtin:
        known = ", ".join(builtin) or "none in this install"
        raise ConfigError(f"{name}: no such built-in config ({known}); give a YAML file's path (./{name} for one here)")
    return builtin[name]


def load_config(path: str | Path | None, overrides: Sequence[str] = (), **fields: Any) -> JobConfig:
    """Read the YAML ``path`` names (:func:`config_file`; or start empty), then CLI fields, then ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = config_file(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the config ({type(exc).__name__}: {describe(exc)})") from exc
    data.update({k: v for k, v in fields.items() if v is not None})
    data = apply_overrides(data, overrides)
    if isinstance(data.get("incremental"), bool):  # "incremental: true" is short for enabled: true
        data["incremental"] = {"enabled": data["incremental"]}
    for required in ("input", "output"):
        if not data.get(required):
            raise ConfigError(f"{path or 'config'}: {required!r} is required (in the YAML or as --{required})")
    cfg = from_mapping(JobConfig, data)
    # Relative paths mean this folder, recorded as such: every worker, and a later resume, see the same.
    return dataclasses.replace(cfg, input=storage.anchored(cfg.input), output=storage.anchored(cfg.output))


def config_to_dict(cfg: JobConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
