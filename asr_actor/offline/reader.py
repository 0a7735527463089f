"""Reader for CTranslate2's ``model.bin`` (binary format version 6).

Written from the format's layout, without importing ctranslate2:

- little-endian throughout;
- header: ``u32`` binary version, spec name (string), ``u32`` spec revision;
- a string is a ``u16`` length that counts a trailing NUL, the bytes, the NUL;
- ``u32`` variable count, then per variable: name, ``u8`` rank, rank x ``u32`` dims,
  ``u8`` dtype code, ``u32`` byte count, row-major data;
- ``u32`` alias count, then per alias: alias name, target name;
- the file ends there (anything left over is an error).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from asr_actor.errors import AsrBatchError

SUPPORTED_BINARY_VERSION = 6

# CTranslate2 dtype code -> numpy dtype. bfloat16 has no numpy dtype: it is read as
# raw uint16 and widened to float32 by ``_bf16_to_f32``.
_DTYPES: Mapping[int, np.dtype] = MappingProxyType(
    {
        0: np.dtype("<f4"),
        1: np.dtype("i1"),
        2: np.dtype("<i2"),
        3: np.dtype("<i4"),
        4: np.dtype("<f2"),
        5: np.dtype("<u2"),
    }
)
_BF16 = 5


class ModelBinError(AsrBatchError):
    """``model.bin`` is not a file this reader understands; the message says where."""


@dataclass(frozen=True)
class ModelBin:
    """The parsed content of one ``model.bin``."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: Mapping[str, np.ndarray]  # name -> array in its stored dtype
    aliases: Mapping[str, str]  # alias name -> target variable name

    def resolve(self, name: str) -> np.ndarray:
        """The array stored under ``name``, following an alias if it is one."""
        return self.variables[self.aliases.get(name, name)]


class _Cursor:
    """Sequential little-endian reads over a bytes buffer, with bounds checks."""

    def __init__(self, buf: bytes, path: Path) -> None:
        self._buf = buf
        self._path = path
        self.offset = 0

    def take(self, n: int) -> memoryview:
        end = self.offset + n
        if end > len(self._buf):
            raise ModelBinError(
                f"{self._path}: truncated at byte {self.offset} (needs {n} more, "
                f"{len(self._buf) - self.offset} left)"
            )
        view = memoryview(self._buf)[self.offset : end]
        self.offset = end
        return view

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.take(length))
        if length == 0 or raw[-1] != 0:
            raise ModelBinError(f"{self._path}: string at byte {self.offset - length} lacks its NUL")
        return raw[:-1].decode("utf-8")

    @property
    def remaining(self) -> int:
        return len(self._buf) - self.offset


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _read_variable(cur: _Cursor) -> tuple[str, np.ndarray]:
    name = cur.string()
    rank = cur.unpack("B")
    dims = tuple(cur.unpack("I") for _ in range(rank))
    code = cur.unpack("B")
    if code not in _DTYPES:
        raise ModelBinError(f"variable {name!r}: unknown dtype code {code}")
    dtype = _DTYPES[code]
    nbytes = cur.unpack("I")
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if nbytes != expected:
        raise ModelBinError(f"variable {name!r}: {nbytes} bytes for shape {dims} of {dtype}")
    array = np.frombuffer(cur.take(nbytes), dtype=dtype).reshape(dims)
    if code == _BF16:
        array = _bf16_to_f32(array)
    return name, array


def read_model_bin(path: str | Path) -> ModelBin:
    """Parse ``path`` fully; raise :class:`ModelBinError` on anything unexpected."""
    path = Path(path)
    cur = _Cursor(path.read_bytes(), path)
    version = cur.unpack("I")
    if version != SUPPORTED_BINARY_VERSION:
        raise ModelBinError(
            f"{path}: binary version {version}, this reader supports {SUPPORTED_BINARY_VERSION}"
        )
    spec_name = cur.string()
    revision = cur.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I")):
        name, array = _read_variable(cur)
        if name in variables:
            raise ModelBinError(f"{path}: variable {name!r} appears twice")
        variables[name] = array
    aliases: dict[str, str] = {}
    for _ in range(cur.unpack("I")):
        alias, target = cur.string(), cur.string()
        if target not in variables:
            raise ModelBinError(f"{path}: alias {alias!r} points to missing {target!r}")
        aliases[alias] = target
    if cur.remaining:
        raise ModelBinError(f"{path}: {cur.remaining} unread bytes after the aliases")
    return ModelBin(
        binary_version=version,
        spec_name=spec_name,
        spec_revision=revision,
        variables=MappingProxyType(variables),
        aliases=MappingProxyType(aliases),
    )
