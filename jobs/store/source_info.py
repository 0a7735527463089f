"""Size and ETag (or mtime) of many objects named by a manifest file, for incremental planning.

A prefix listing has them already; a manifest file names objects one by one. On S3 the
folders holding them are listed (1,000 objects per request), each in its own thread,
while a folder's listing stays within ``LIST_BUDGET`` objects per object the manifest
names there (plus one page): a folder with far more objects than the manifest wants
falls back to one HEAD request per object, ``SOURCE_INFO_THREADS`` in flight. Other
stores get the HEADs (``info``). An object that cannot be read gets nulls: fetch will
say why, as an error row.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from asr_actor.schema import ETAG, SIZE, URI
from asr_actor import storage
from asr_actor.storage import Store
from jobs.store.manifest import S3_PAGE, s3_objects

SOURCE_INFO_THREADS = 64  # listings or HEAD requests in flight
LIST_BUDGET = 10  # objects a folder's listing may yield per object the manifest names in it

Info = tuple[int | None, str | None]


def _head(uri: str, store: Store) -> Info:
    try:
        return store.source_info(uri)
    except Exception:  # noqa: BLE001 - a missing or unreadable object: fetch will say why, as an error row
        return None, None


def _list_folder(folder: str, wanted: set[str], store: Store) -> dict[str, Info] | None:
    """The wanted objects' info from the folder's listing, or None once it outgrows its budget."""
    budget, found = LIST_BUDGET * len(wanted) + S3_PAGE, {}
    for count, (uri, size, tag) in enumerate(s3_objects(folder, store), 1):
        if uri in wanted:
            found[uri] = (size, tag)
        if count > budget:
            return None
    return found


def _listed(folder: str, uris: list[str], store: Store) -> dict[str, Info] | None:
    """The info of ``uris`` from their S3 folder's listing; None where that costs too much or is refused."""
    try:
        found = _list_folder(folder, set(uris), store)
    except Exception:  # noqa: BLE001 - no listing permission, say: HEAD each object instead
        return None
    return None if found is None else {u: found.get(u, (None, None)) for u in uris}  # unlisted: gone since


def with_source_info(manifest: pa.Table, store: Store) -> pa.Table:
    """``manifest`` with ``size`` and ``etag`` columns, read from the store where it has none."""
    if SIZE in manifest.column_names and ETAG in manifest.column_names:
        return manifest
    uris = manifest.column(URI).to_pylist()
    folders: dict[str, list[str]] = defaultdict(list)
    for uri in dict.fromkeys(uris):
        if uri.startswith("s3://"):
            folders[storage.parent(uri) + "/"].append(uri)
    infos: dict[str, Info] = {}
    with ThreadPoolExecutor(SOURCE_INFO_THREADS) as pool:
        for listed in pool.map(lambda f: _listed(f, folders[f], store), list(folders)):
            infos.update(listed or {})
        rest = [u for u in dict.fromkeys(uris) if u not in infos]
        infos.update(zip(rest, pool.map(lambda u: _head(u, store), rest)))
    sizes, tags = zip(*(infos[u] for u in uris)) if uris else ((), ())
    out = manifest.drop_columns([c for c in (SIZE, ETAG) if c in manifest.column_names])
    return out.append_column(SIZE, pa.array(sizes, pa.int64())).append_column(ETAG, pa.array(tags, pa.string()))
