"""Object storage through fsspec: ``s3://``, ``gs://``, ``file://`` and local paths alike.

Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, …) as boto3, s3fs and pyarrow read
them; nothing here prints or stores them. Writes are whole-or-absent: a local file is
written under a temporary name and renamed, an object-store PUT is atomic already.
Every call retries transient failures for ``retry_s`` seconds (:mod:`jobs.store.retry`); a
URI whose scheme no installed filesystem serves is an :class:`UnsupportedUri`.

An attempt on an asynchronous store (s3fs, gcsfs) that neither answers nor fails (a
connection dropped without a word on the way) is given up after a deadline, its client
dropped, and tried again like any transient failure: no store call holds a run forever.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any, Callable, TypeVar

from asr_actor.errors import AsrBatchError, describe, redact
from jobs.store.retry import DEFAULT_RETRY_S, retrying

T = TypeVar("T")


ATTEMPT_TIMEOUT_S = 60.0  # s one attempt on an asynchronous store may take, besides its transfer
SLOWEST_BYTES_PER_S = 2**20  # a transfer slower than 1 MiB/s is taken for a dead connection


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


def _attempts(uri: str, op: Callable[[Any, str, dict[str, float]], T], retry_s: float, nbytes: int = 0) -> T:
    """``op(fs, path, deadline)`` retried for ``retry_s``; ``deadline`` is fsspec's ``timeout``
    keyword for one attempt on an asynchronous store (empty for a blocking one).

    An attempt past its deadline drops the filesystem's cached clients, so the next one
    starts on new connections rather than on the one that went silent.
    """
    from fsspec.asyn import AsyncFileSystem
    from fsspec.exceptions import FSTimeoutError

    def attempt() -> T:
        fs, path = fs_and_path(uri)
        if not isinstance(fs, AsyncFileSystem):
            return op(fs, path, {})
        timeout = ATTEMPT_TIMEOUT_S + nbytes / SLOWEST_BYTES_PER_S
        try:
            return op(fs, path, {"timeout": timeout})
        except FSTimeoutError:
            type(fs).clear_instance_cache()
            raise TimeoutError(f"no answer in {timeout:g} s") from None  # transient; its cause is a bare cancellation

    return retrying(attempt, uri, retry_s)


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
    def check(fs: Any, path: str, deadline: dict[str, float]) -> bool:
        fs.invalidate_cache(path)
        return fs.exists(path, **deadline)

    return _attempts(uri, check, retry_s)


def size(uri: str, retry_s: float = DEFAULT_RETRY_S) -> int | None:
    """Bytes of the object at ``uri`` (None when the store does not say)."""
    return _attempts(uri, lambda fs, path, deadline: fs.size(path, **deadline), retry_s)


def read_bytes(uri: str, retry_s: float = DEFAULT_RETRY_S, expected_bytes: int | None = None) -> bytes:
    """The whole object; ``expected_bytes`` (its size, when known) lengthens the deadline of each attempt."""
    return _attempts(uri, lambda fs, path, deadline: fs.cat_file(path, **deadline), retry_s, expected_bytes or 0)


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
    if is_local(uri):
        _write_local(fs_and_path(uri)[1], data)
        return
    _attempts(uri, lambda fs, path, deadline: fs.pipe_file(path, data, **deadline), retry_s, len(data))


def list_files(uri: str, suffix: str = "", retry_s: float = DEFAULT_RETRY_S) -> list[str]:
    """Full URIs of the files directly under ``uri`` that end with ``suffix`` (none if absent)."""
    def listing(fs: Any, path: str, deadline: dict[str, float]) -> list[str]:
        fs.invalidate_cache(path)
        if not fs.exists(path, **deadline):
            return []
        return [p for p in fs.ls(path, detail=False, **deadline) if p.endswith(suffix)]

    return _full_uris(uri, _attempts(uri, listing, retry_s))


def _full_uris(uri: str, paths: list[str]) -> list[str]:
    """fsspec lists paths without the scheme: give them back the one of ``uri`` (local paths stay paths)."""
    prefix = uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""
    return sorted(prefix + p if prefix and "://" not in p else p for p in paths)


def list_dirs(uri: str, retry_s: float = DEFAULT_RETRY_S) -> list[str]:
    """Full URIs of the folders (prefixes) directly under ``uri`` (none if absent)."""
    def listing(fs: Any, path: str, deadline: dict[str, float]) -> list[str]:
        fs.invalidate_cache(path)
        if not fs.exists(path, **deadline):
            return []
        return [e["name"] for e in fs.ls(path, detail=True, **deadline) if e.get("type") == "directory"]

    return _full_uris(uri, _attempts(uri, listing, retry_s))


def source_info(uri: str, retry_s: float = DEFAULT_RETRY_S) -> tuple[int | None, str | None]:
    """(size, ETag or mtime) of the object at ``uri``: what tells a changed source from the same one."""
    info = _attempts(uri, lambda fs, path, deadline: fs.info(path, **deadline), retry_s)
    tag = info.get("ETag") or info.get("etag") or info.get("mtime")
    return info.get("size"), (str(tag).strip('"') if tag is not None else None)


def remove(uri: str, retry_s: float = DEFAULT_RETRY_S) -> None:
    def rm(fs: Any, path: str, deadline: dict[str, float]) -> None:
        if fs.exists(path, **deadline):  # a retry after a lost answer finds it gone already
            fs.rm(path, **deadline)

    _attempts(uri, rm, retry_s)
