"""The measured ways of transcribing the corpus. Each ``build`` returns a closure that
transcribes the files it is given and returns an :data:`Outcome`: the audio seconds it
covered and each file's transcript (so the modes can be checked against each other)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from asr_actor.audio import decode_audio
from bench_parts import gpu_busy
from asr_actor.config import DUMMY, WHISPER_NAMES, ModelConfig

ROOT = Path(__file__).resolve().parents[2]
Files = list[tuple[str, bytes, float]]
Outcome = tuple[float, dict[str, str]]  # audio seconds covered, transcript per file name
_stack = contextlib.ExitStack()  # services started for the measurements (S3 server, Ray)
# The job config every mode runs (its model, decoding, stages) and the --set overrides on it.
_state: dict = {"config": ROOT / "configs" / "local.yaml", "overrides": []}


def configure(config: Path, overrides: list[str]) -> None:
    """Measure the job (and the bare model) as ``config`` with ``overrides`` sets them up."""
    _state.update(config=config, overrides=list(overrides))


def job_config(batch_size: int, **fields):
    """The job config of the measurements with decoding batches of ``batch_size``."""
    from jobs.config import load_config

    fields = {"input": "-", "output": "-", **fields}
    return load_config(_state["config"], [*_state["overrides"], f"decoding.batch_size={batch_size}"], **fields)


def shutdown() -> None:
    """Stop the services and drop the loaded model (a next measurement may load another)."""
    _stack.close()
    if "ray" in sys.modules:
        import ray

        ray.shutdown()
    if _state.pop("loaded", None) is not None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def gpu_busy_median(clear: bool = False) -> float | None:
    """The median GPU busy fraction of the job's runs since the last clearing (None without a GPU)."""
    values = [v for v in _state.get("gpu_busy", []) if v is not None]
    if clear:
        _state["gpu_busy"] = []
    return round(float(np.median(values)), 3) if values else None


def _loaded(batch_size: int):
    """The job's model, loaded here as a model actor loads it, and the job's decoding options."""
    from asr_actor.model import load_model

    cfg = job_config(batch_size)
    if "loaded" not in _state:
        _state["loaded"] = load_model(cfg.model)
    return _state["loaded"], cfg.decoding


def _bare(files: Files, batch_size: int) -> Callable[[Files], Outcome]:
    """The job's own windows and ``generate`` call, in one process, on pre-computed features."""
    from asr_actor.generation import generate_kwargs, generate_segments
    from asr_actor.features import LogMel
    from asr_actor.windows import plan_windows

    loaded, dec = _loaded(batch_size)
    log_mel = LogMel.of(loaded.processor.feature_extractor)
    cache: dict[str, list] = {}

    def windows_of(name: str, data: bytes) -> list:
        key = hashlib.sha256(data).hexdigest()  # the corpus repeats its fixtures: their features once each
        if key not in cache:  # features are computed outside the timed runs' model work
            w = decode_audio(data).waveform
            cache[key] = [(p.duration_s, log_mel.one(w[p.start : p.end])) for p in plan_windows(w, 20.0)]
        return cache[key]

    for name, data, _ in files:
        windows_of(name, data)

    def run(subset: Files) -> Outcome:
        windows = sorted(((name, i, d, f) for name, data, _ in subset for i, (d, f) in enumerate(windows_of(name, data))),
                         key=lambda x: -x[2])
        feats = np.stack([w[3] for w in windows])
        tokens: dict[str, list[tuple[int, list[int]]]] = {name: [] for name, _, _ in subset}
        for lo in range(0, len(feats), batch_size):
            batch = feats[lo : lo + batch_size]
            kwargs = generate_kwargs(loaded, dec, dec.task, [dec.language] * len(batch))
            for (name, i, _, _), segments in zip(windows[lo:], generate_segments(loaded, batch, kwargs, batch_size)):
                tokens[name].append((i, [t for seg in segments for t in seg.tokens]))
        decode = loaded.processor.tokenizer.decode
        texts = {name: decode([t for _, ts in sorted(parts) for t in ts], skip_special_tokens=True).strip()
                 for name, parts in tokens.items()}
        return sum(w[2] for w in windows), texts

    return run


def _start_s3() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers import s3_server  # the tests' moto server launcher

    aws = _stack.enter_context(s3_server())
    os.environ.update(aws)  # before ray.init, so every Ray worker inherits it
    return aws


def start(modes: list[str]) -> None:
    """Services first: the S3 server's environment must exist before Ray starts its workers."""
    if "job_s3" in modes:
        _state["aws"] = _start_s3()
    if {"job", "job_s3"} & set(modes):
        from jobs.run.ray_cluster import init_ray

        init_ray(job_config(1).ray)  # the job's own local cluster, as its config sizes it


def _put_corpus(files: Files, s3: bool) -> str:
    """Write the corpus locally or into a bucket; return its folder URI."""
    from asr_actor import storage

    if s3:
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        root = "s3://bench/corpus"
    else:
        root = _stack.enter_context(tempfile.TemporaryDirectory(prefix="asr-bench-"))
    for name, data, _ in files:
        storage.Store().write_bytes(storage.join(root, name), data)
    return root


def _manifest(root: str, files: Files) -> str:
    """A JSONL manifest of ``files`` (relative URIs) beside the corpus."""
    import json

    from asr_actor import storage

    manifest = storage.join(root, f"manifest-{uuid.uuid4().hex[:8]}.jsonl")
    lines = [json.dumps({"id": name, "uri": name}) for name, _, _ in files]
    storage.Store().write_bytes(manifest, ("\n".join(lines) + "\n").encode())
    return manifest


def _job(files: Files, batch_size: int, s3: bool) -> Callable[[Files], Outcome]:
    from asr_actor.schema import ID, TEXT
    from asr_actor import storage
    from jobs.run.pipeline import run_job
    from jobs.state.run_folder import RunFolder

    root = _put_corpus(files, s3)
    output = "s3://bench/runs" if s3 else _stack.enter_context(tempfile.TemporaryDirectory(prefix="asr-runs-"))

    def run(subset: Files) -> Outcome:
        manifest = _manifest(root, subset)
        cfg = job_config(batch_size, input=manifest, output=output, run_id=f"bench-{uuid.uuid4().hex[:8]}")
        with contextlib.redirect_stderr(io.StringIO()), gpu_busy.sampled() as busy:
            summary = run_job(cfg)
        _state.setdefault("gpu_busy", []).append(busy.fraction())
        rows = RunFolder(storage.join(output, cfg.run_id)).read_all([ID, TEXT]).to_pydict()
        return summary["audio_s"], dict(zip(rows[ID], rows[TEXT]))

    return run


def _origin() -> Callable[[Files], Outcome]:
    """The origin script: fp32 on CPU (fp16 on GPU), SDPA, a pipeline called once per file.

    Its decoding defaults are kept (transformers 5's ASR pipeline decodes with 5 beams);
    only audio over 30 s gets ``return_timestamps=True``, without which the pipeline
    refuses long-form input.
    """
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor, pipeline
    from asr_actor.model_source import resolve_model_source

    folder = resolve_model_source(ModelConfig()).path
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = WhisperForConditionalGeneration.from_pretrained(
        folder, dtype=dtype, attn_implementation="sdpa", low_cpu_mem_usage=True, use_safetensors=True,
        local_files_only=True,
    ).to(device)
    processor = WhisperProcessor.from_pretrained(folder, local_files_only=True)
    pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                    feature_extractor=processor.feature_extractor, dtype=dtype, device=device)
    # English-only models refuse a task; the origin script passes it to multilingual ones.
    gen = {"task": "transcribe"} if model.generation_config.is_multilingual else {}

    def run(subset: Files) -> Outcome:
        total, texts = 0.0, {}
        for name, data, _ in subset:
            audio = decode_audio(data)
            out = pipe({"raw": audio.waveform, "sampling_rate": 16_000}, generate_kwargs=gen,
                       **({"return_timestamps": True} if audio.duration_s > 30 else {}))
            total, texts[name] = total + audio.duration_s, out["text"].strip()
        return total, texts

    return run


def _faster_whisper(batch_size: int) -> Callable[[Files], Outcome] | None:
    if importlib.util.find_spec("faster_whisper") is None:
        return None
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from asr_actor.offline.folder import source_dir

    model = WhisperModel(str(source_dir()), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)
    pipe = BatchedInferencePipeline(model)

    def run(subset: Files) -> Outcome:
        total, texts = 0.0, {}
        for name, data, _ in subset:
            audio = decode_audio(data)
            segments, _ = pipe.transcribe(audio.waveform, batch_size=batch_size, beam_size=1, language="en")
            total, texts[name] = total + audio.duration_s, " ".join(seg.text.strip() for seg in segments)
        return total, texts

    return run


TASKS = ("transcribe", "translate")  # modes: the job's transcriber in this process, every row given that task


def _task(task: str, batch_size: int) -> Callable[[Files], Outcome]:
    """The job's model actor (:class:`asr_actor.transcriber.Transcriber`) in this process, every row ``task``;
    each decoding pass it makes is counted by temperature with the tokens it generated (why a task is slower)."""
    from collections import Counter

    from asr_actor.transcriber import Transcriber

    cfg = job_config(batch_size)
    transcriber = Transcriber(cfg.transcriber())
    judge = transcriber.loaded.model._need_fallback
    passes: Counter = Counter()
    tokens: Counter = Counter()

    def counting(sequence, outputs, index, processors, config, vocab, temperature):
        passes[temperature or 0.0] += 1
        tokens[temperature or 0.0] += len(sequence)
        return judge(sequence, outputs, index, processors, config, vocab, temperature)

    transcriber.loaded.model._need_fallback = counting

    def run(subset: Files) -> Outcome:
        passes.clear()
        tokens.clear()
        out = transcriber({"id": [n for n, _, _ in subset], "audio": [d for _, d, _ in subset], "task": [task] * len(subset)})
        _state.setdefault("passes", {})[task] = {
            f"{t:g}": {"passes": passes[t], "tokens": tokens[t]} for t in sorted(passes)}
        return float(sum(out["duration_s"])), {i: t or "" for i, t in zip(out["id"], out["text"])}

    return run


def passes(task: str) -> dict | None:
    """The last run of mode ``task``: passes and generated tokens per temperature."""
    return _state.get("passes", {}).get(task)


def build(mode: str, files: Files, batch_size: int) -> Callable[[Files], Outcome] | None:
    if mode in TASKS:
        return _task(mode, batch_size)
    if mode == "bare":
        return _bare(files, batch_size)
    if mode in ("job", "job_s3"):
        return _job(files, batch_size, s3=mode == "job_s3")
    if mode == "origin":
        return _origin()
    if mode == "faster_whisper":
        return _faster_whisper(batch_size)
    raise SystemExit(f"unknown mode {mode!r}")


# --- synthetic models: dummy weights (asr_actor/dummy.py), real shapes, a fixed number of decoded tokens ---

SYNTHETIC = sorted(WHISPER_NAMES)  # every name openai-whisper knows
TOKENS_PER_WINDOW = ModelConfig().dummy_tokens  # about what 30 s of speech decodes to


def _synthetic_model(name: str, dtype: str, attention: str, device: str):
    from asr_actor.dummy import build_model, dummy_folder

    folder = dummy_folder(ModelConfig(id=name, load_format=DUMMY))
    model = build_model(folder, device, dtype, attention).eval()
    return model, model.config.num_mel_bins


def _synthetic_point(model, mels: int, batch: int, repeats: int) -> dict:
    """Median time of ``generate`` on ``batch`` random windows, forced to TOKENS_PER_WINDOW tokens."""
    import torch

    device, dtype = model.device, model.dtype
    feats = torch.randn(batch, mels, 3000, device=device, dtype=dtype)
    kwargs = {"min_new_tokens": TOKENS_PER_WINDOW, "max_new_tokens": TOKENS_PER_WINDOW, "num_beams": 1, "do_sample": False}
    if model.generation_config.is_multilingual:  # no language detection pass
        kwargs.update(language="en", task="transcribe")

    def once() -> None:
        with torch.inference_mode():
            model.generate(feats, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up: kernels chosen, caches sized
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    median = float(np.median(times))
    return {"batch": batch, "median_s": round(median, 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3), "windows_per_s": round(batch / median, 2),
            "rtfx": round(30.0 * batch / median, 1)}


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def synthetic_sweep(name: str, sweep: bool, repeats: int, batches: list[int] | None = None) -> dict:
    """Every (attention, dtype) builds one model, then runs each batch size on it.

    A point that fails (out of memory, an attention the build lacks) is recorded with its
    error and the sweep goes on; each point is also printed to stderr as it finishes.
    """
    import torch

    gpu = torch.cuda.is_available()
    dtypes = (["float16", "bfloat16"] if sweep else ["float16"]) if gpu else ["float32"]
    attentions = ["sdpa"] + (["flash_attention_2"] if gpu and importlib.util.find_spec("flash_attn") else [])
    attentions += ["eager"] if sweep else []
    if not batches:
        batches = ([8, 16, 32, 64] if sweep else [32]) if gpu else ([1, 4] if sweep else [4])
    points = []
    for attention in attentions:  # sdpa first: the default, and what a short run must not miss
        for dtype in dtypes:
            head = {"dtype": dtype, "attention": attention}
            try:
                model, mels = _synthetic_model(name, dtype, attention, "cuda" if gpu else "cpu")
            except Exception as exc:  # noqa: BLE001 - e.g. an attention this build lacks: record, go on
                points.append({**head, "error": _reason(exc)})
                print(points[-1], file=sys.stderr, flush=True)
                continue
            for batch in batches:
                try:
                    points.append({**head, **_synthetic_point(model, mels, batch, repeats)})
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record and go on
                    points.append({**head, "batch": batch, "error": _reason(exc)})
                print(points[-1], file=sys.stderr, flush=True)
            del model
            if gpu:
                torch.cuda.empty_cache()
    return {"model": name, "tokens_per_window": TOKENS_PER_WINDOW, "points": points}
