"""The model.bin reader: format rules on hand-built files, facts on the real one."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from asr_actor.offline.folder import source_dir
from asr_actor.offline.reader import ModelBinError, read_model_bin


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, array: np.ndarray, code: int) -> bytes:
    data = array.tobytes()
    dims = b"".join(struct.pack("<I", d) for d in array.shape)
    return _string(name) + struct.pack("<B", array.ndim) + dims + struct.pack("<BI", code, len(data)) + data


def _model_bin(variables: list[bytes], aliases: list[tuple[str, str]], version: int = 6) -> bytes:
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables)) + b"".join(variables)
    out += struct.pack("<I", len(aliases)) + b"".join(_string(a) + _string(t) for a, t in aliases)
    return out


def test_reads_every_dtype_shape_and_alias(tmp_path):
    w = np.arange(6, dtype="<f2").reshape(2, 3)
    bf16 = np.array([1.5, -2.0], dtype=np.float32).view(np.uint32) >> 16
    body = _model_bin(
        [
            _variable("a/weight", w, 4),
            _variable("a/heads", np.array(6, dtype="<i4"), 3),
            _variable("a/act", np.array(3, dtype="i1"), 1),
            _variable("a/bf", bf16.astype("<u2"), 5),
        ],
        [("b/weight", "a/weight")],
    )
    (tmp_path / "model.bin").write_bytes(body)
    mb = read_model_bin(tmp_path / "model.bin")
    assert (mb.binary_version, mb.spec_name, mb.spec_revision) == (6, "WhisperSpec", 3)
    np.testing.assert_array_equal(mb.variables["a/weight"], w)
    assert int(mb.variables["a/heads"]) == 6 and int(mb.variables["a/act"]) == 3
    np.testing.assert_array_equal(mb.variables["a/bf"], np.array([1.5, -2.0], dtype=np.float32))
    assert mb.resolve("b/weight") is mb.variables["a/weight"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:-3], "truncated"),
        (lambda b: b + b"\0", "unread bytes"),
        (lambda b: struct.pack("<I", 5) + b[4:], "binary version 5"),
    ],
)
def test_malformed_files_are_rejected(tmp_path, mutate, message):
    body = _model_bin([_variable("x", np.zeros(2, "<f4"), 0)], [])
    (tmp_path / "model.bin").write_bytes(mutate(body))
    with pytest.raises(ModelBinError, match=message):
        read_model_bin(tmp_path / "model.bin")


def test_unknown_dtype_and_dangling_alias_are_rejected(tmp_path):
    (tmp_path / "a.bin").write_bytes(_model_bin([_variable("x", np.zeros(2, "<f4"), 9)], []))
    with pytest.raises(ModelBinError, match="unknown dtype code 9"):
        read_model_bin(tmp_path / "a.bin")
    (tmp_path / "b.bin").write_bytes(_model_bin([_variable("x", np.zeros(2, "<f4"), 0)], [("y", "z")]))
    with pytest.raises(ModelBinError, match="missing 'z'"):
        read_model_bin(tmp_path / "b.bin")


def test_real_tiny_en_header_and_counts():
    mb = read_model_bin(source_dir() / "model.bin")
    assert (mb.binary_version, mb.spec_name, mb.spec_revision) == (6, "WhisperSpec", 3)
    assert len(mb.variables) == 148
    assert dict(mb.aliases) == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert mb.variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert int(mb.variables["encoder/num_heads"]) == 6 and int(mb.variables["decoder/activation"]) == 3
