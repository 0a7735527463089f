"""Is an audio file whole? Checks on the container's own bytes that FFmpeg does not make.

FFmpeg decodes a cut file as far as its bytes go and reports the length it found, not
the one the file declares, for two common containers:

- WAV: the ``data`` chunk states its size in bytes; a file that holds fewer is cut;
- Ogg (Opus, Vorbis, FLAC in Ogg): the last page of a stream carries the end-of-stream
  flag; a file whose last page lacks it, or whose last page is incomplete, is cut;
- MP3 with a Xing/Info header (LAME, FFmpeg): the header states the stream's size in
  bytes; a file that holds fewer is cut.

Other containers state their length where FFmpeg reads it (FLAC's STREAMINFO, MP4's
``moov``), and :mod:`asr_actor.audio` compares that length with what decodes. Each
check returns a reason, or None when the file looks whole.
"""

from __future__ import annotations

import struct

_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streamed WAVs write these when the length is not known
_OGG_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments
_OGG_EOS = 0x04
_ID3V1 = 128  # bytes of a trailing ID3v1 tag ("TAG...")
_XING_SEARCH = 64  # bytes after an MP3 frame's start where a Xing/Info header may sit
_XING_BYTES_FLAG, _XING_FRAMES_FLAG = 0x2, 0x1


def _wav_shortfall(data: bytes) -> str | None:
    pos, byte_rate = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt " and body + 12 <= len(data):
            byte_rate = struct.unpack_from("<I", data, body + 8)[0]
        if chunk == b"data":
            held = len(data) - body
            if size in _UNKNOWN_SIZES or held >= size:
                return None
            if byte_rate:
                return f"the WAV header declares {size / byte_rate:.2f} s of audio, the file holds {held / byte_rate:.2f} s"
            return f"the WAV header declares {size} bytes of audio, the file holds {held}"
        pos = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _ogg_shortfall(data: bytes) -> str | None:
    last = data.rfind(b"OggS")
    if last < 0 or last + _OGG_HEADER.size > len(data):
        return "the Ogg stream ends inside a page header"
    header = _OGG_HEADER.unpack_from(data, last)
    flags, segments = header[2], header[7]
    table = data[last + _OGG_HEADER.size : last + _OGG_HEADER.size + segments]
    if len(table) < segments or last + _OGG_HEADER.size + segments + sum(table) > len(data):
        return "the Ogg stream ends inside its last page"
    if not flags & _OGG_EOS:
        return "the Ogg stream ends without its end-of-stream page"
    return None


def _mp3_start(data: bytes) -> int:
    """Offset of the first MPEG audio frame: after an ID3v2 tag if there is one."""
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]  # syncsafe integer
    return 10 + size + (10 if data[5] & 0x10 else 0)  # header, tag, optional footer


def _mp3_shortfall(data: bytes) -> str | None:
    start = _mp3_start(data)
    head = data[start : start + _XING_SEARCH]
    at = max(head.find(b"Xing"), head.find(b"Info"))
    if at < 0 or start + at + 8 > len(data):
        return None  # no Xing/Info header: the file states no size to check
    flags = struct.unpack_from(">I", data, start + at + 4)[0]
    if not flags & _XING_BYTES_FLAG:
        return None
    field = start + at + 8 + (4 if flags & _XING_FRAMES_FLAG else 0)
    if field + 4 > len(data):
        return "the MP3 stream ends inside its Xing header"
    declared = struct.unpack_from(">I", data, field)[0]
    held = len(data) - start - (_ID3V1 if data[-_ID3V1:-_ID3V1 + 3] == b"TAG" else 0)
    return f"the MP3 header declares {declared} bytes of audio, the file holds {held}" if held < declared else None


def _is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def truncation(data: bytes) -> str | None:
    """Why ``data`` looks cut short, for the containers whose cut FFmpeg does not report; else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_shortfall(data)
    if data[:4] == b"OggS":
        return _ogg_shortfall(data)
    if _is_mp3(data):
        return _mp3_shortfall(data)
    return None
