"""Object storage through fsspec: ``s3://``, ``gs://``, ``file://`` and local paths alike.

Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, …) as boto3, s3fs and pyarrow read
them; nothing here prints or stores them. Writes are whole-or-absent: a local file is
written under a temporary name and renamed, an object-store PUT is atomic already.
Every call retries transient failures for ``retry_s`` seconds (:mod:`jobs.retry`); a
URI whose scheme no installed filesystem serves is an :class:`UnsupportedUri`.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any

from asr_actor.errors import AsrBatchError, describe, redact
from jobs.retry import DEFAULT_RETRY_S, retrying


class UnsupportedUri(AsrBatchError):
    """No installed fsspec filesystem serves this URI's scheme."""


def fs_and_path(uri: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # a known scheme whose package is missing (gs:// without gcsfs)
        raise UnsupportedUri(f"{redact(uri)}: {describe(exc)}") from exc
    except ValueError as exc:  # "Protocol not known"
        scheme = uri.split("://", 1)[0]
        raise UnsupportedUri(f"{redact(uri)}: unsupported URI scheme {scheme!r}") from exc


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URL."""
    if "://" in base:
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.join(rest, *parts)}"
    return os.path.join(base, *parts)


def parent(uri: str) -> str:
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest.rstrip('/'))}"
    return os.path.dirname(os.path.abspath(uri))


def absolute(uri: str, base_dir: str) -> str:
    """``uri`` if it is a URL or absolute path, else resolved against ``base_dir``."""
    if "://" in uri or os.path.isabs(uri):
        return uri
    return join(base_dir, uri) if "://" in base_dir else os.path.normpath(os.path.join(base_dir, uri))


def anchored(uri: str) -> str:
    """A local path made absolute (against the current folder); URLs as they are."""
    return uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))


def exists(uri: str, retry_s: float = DEFAULT_RETRY_S) -> bool:
    fs, path = fs_and_path(uri)

    def check() -> bool:
        fs.invalidate_cache(path)
        return fs.exists(path)

    return retrying(check, uri, retry_s)


def size(uri: str, retry_s: float = DEFAULT_RETRY_S) -> int | None:
    """Bytes of the object at ``uri`` (None when the store does not say)."""
    fs, path = fs_and_path(uri)
    return retrying(lambda: fs.size(path), uri, retry_s)


def read_bytes(uri: str, retry_s: float = DEFAULT_RETRY_S) -> bytes:
    fs, path = fs_and_path(uri)

    def read() -> bytes:
        with fs.open(path, "rb") as fh:
            return fh.read()

    return retrying(read, uri, retry_s)


def _write_local(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_bytes(uri: str, data: bytes, retry_s: float = DEFAULT_RETRY_S) -> None:
    """Write ``data`` so that ``uri`` is either absent or complete, never partial.

    Retrying is safe: the same object is written again whole (a single PUT).
    """
    fs, path = fs_and_path(uri)
    if is_local(uri):
        _write_local(path, data)
        return

    def put() -> None:
        with fs.open(path, "wb") as fh:
            fh.write(data)

    retrying(put, uri, retry_s)


def list_files(uri: str, suffix: str = "", retry_s: float = DEFAULT_RETRY_S) -> list[str]:
    """Full URIs of the files directly under ``uri`` that end with ``suffix`` (none if absent)."""
    fs, path = fs_and_path(uri)

    def listing() -> list[str]:
        fs.invalidate_cache(path)
        return [p for p in fs.ls(path, detail=False) if p.endswith(suffix)] if fs.exists(path) else []

    return _full_uris(uri, retrying(listing, uri, retry_s))


def _full_uris(uri: str, paths: list[str]) -> list[str]:
    """fsspec lists paths without the scheme: give them back the one of ``uri`` (local paths stay paths)."""
    prefix = uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""
    return sorted(prefix + p if prefix and "://" not in p else p for p in paths)


def list_dirs(uri: str, retry_s: float = DEFAULT_RETRY_S) -> list[str]:
    """Full URIs of the folders (prefixes) directly under ``uri`` (none if absent)."""
    fs, path = fs_and_path(uri)

    def listing() -> list[str]:
        fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        return [e["name"] for e in fs.ls(path, detail=True) if e.get("type") == "directory"]

    return _full_uris(uri, retrying(listing, uri, retry_s))


def source_info(uri: str, retry_s: float = DEFAULT_RETRY_S) -> tuple[int | None, str | None]:
    """(size, ETag or mtime) of the object at ``uri``: what tells a changed source from the same one."""
    fs, path = fs_and_path(uri)
    info = retrying(lambda: fs.info(path), uri, retry_s)
    tag = info.get("ETag") or info.get("etag") or info.get("mtime")
    return info.get("size"), (str(tag).strip('"') if tag is not None else None)


def remove(uri: str, retry_s: float = DEFAULT_RETRY_S) -> None:
    fs, path = fs_and_path(uri)

    def rm() -> None:
        if fs.exists(path):  # a retry after a lost answer finds it gone already
            fs.rm(path)

    retrying(rm, uri, retry_s)
