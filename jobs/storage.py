"""Object storage through fsspec: ``s3://``, ``gs://``, ``file://`` and local paths alike.

Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, …) as boto3, s3fs and pyarrow read
them; nothing here prints or stores them. Writes are whole-or-absent: a local file is
written under a temporary name and renamed, an object-store PUT is atomic already.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any


def fs_and_path(uri: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(uri)


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


def exists(uri: str) -> bool:
    fs, path = fs_and_path(uri)
    return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    fs, path = fs_and_path(uri)
    with fs.open(path, "rb") as fh:
        return fh.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` so that ``uri`` is either absent or complete, never partial."""
    fs, path = fs_and_path(uri)
    if is_local(uri):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return
    with fs.open(path, "wb") as fh:
        fh.write(data)


def list_files(uri: str, suffix: str = "") -> list[str]:
    """Full URIs of the files directly under ``uri`` that end with ``suffix`` (none if absent)."""
    fs, path = fs_and_path(uri)
    if not fs.exists(path):
        return []
    fs.invalidate_cache(path)
    names = [p for p in fs.ls(path, detail=False) if p.endswith(suffix)]
    prefix = uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""
    return sorted(prefix + p if prefix and "://" not in p else p for p in names)


def remove(uri: str) -> None:
    fs, path = fs_and_path(uri)
    fs.rm(path)
