"""Publish complete runs' rows to an Iceberg table keyed by ``id``: a view of the run folders, as ``export ROOT`` is.

Per run, oldest first (:func:`publish_pending`): its rows are upserted by ``id`` through
Ray Data's Iceberg writer (``write_iceberg``, ``SaveMode.UPSERT``), except an error row
for an id the table holds as an ok row (found by a scan filtered on the run's error ids):
an ok row is kept over a newer error, as export keeps it. The ids the table holds that
are gone from the run's input listing (a scan of the ``id`` column only) are deleted in
the same rewrite and commit (:func:`jobs.report.iceberg_table.upsert_rows`). The table's
schema is the run's output schema; a missing namespace or table is created, new columns
are added. After the commits, ``_PUBLISHED`` in the run
folder records the table, snapshot and rows: a run is published once, and one whose
publish failed is caught up by the next publish of its root. Publishing a run again is
harmless (an upsert by id gives the same table). The run folders are never changed but
for that marker; the driver reads ids, never a whole run's rows.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor import storage
from asr_actor.errors import redact
from asr_actor.schema import ERROR, ID
from asr_actor.storage import Store
from jobs.config import RayConfig
from jobs.report.iceberg_target import EXAMPLE, PublishError, catalog_properties, load_catalog, parse_target
from jobs.state.history import complete_runs
from jobs.report.iceberg_table import delete_ids, gone_ids, ok_ids_in_table, run_schema, upsert_rows
from jobs.state.run_folder import RunFolder

PUBLISH_LOCK_TTL_S = 300.0  # s the root's lock taken by `asr-batch publish` stays valid without a heartbeat


def publish_run(folder: RunFolder, target: str, ray: RayConfig = RayConfig(), verbose: bool = False) -> dict[str, Any]:
    """Upsert one complete run's rows into ``target`` (``iceberg://CATALOG/NAMESPACE.TABLE``), delete the ids
    gone from its listing, record ``_PUBLISHED``; return the figures. Ray is started if it is not running."""
    from jobs.run.ray_cluster import failure_cause, init_ray

    started = time.perf_counter()
    parsed = parse_target(target, "--publish")
    if not folder.is_complete():
        raise PublishError(f"{redact(folder.uri)} is not complete (no _SUCCESS): finish it with asr-batch resume first")
    properties = catalog_properties(parsed, storage.parent(folder.uri))
    catalog = load_catalog(parsed, properties)
    try:
        schema = run_schema(folder)
        catalog.create_namespace_if_not_exists(parsed.namespace)
        table = catalog.create_table_if_not_exists(parsed.identifier, schema=schema)
        with table.update_schema() as update:  # new columns (and struct fields) of this run, before any file is written
            update.union_by_name(schema)
        keys = folder.keys()
        errors = pc.unique(keys.filter(pc.is_valid(keys.column(ERROR))).column(ID))
        skip = ok_ids_in_table(table, errors) if table.current_snapshot() is not None else pa.array([], pa.string())
        upserted = keys.num_rows - len(skip)
        gone = gone_ids(table, folder.read_listing([ID]).column(ID).combine_chunks())
        if upserted:
            init_ray(ray, verbose)
            upsert_rows(folder, parsed, properties, table, schema, skip, gone)
        else:
            delete_ids(table, gone)
        snapshot = catalog.load_table(parsed.identifier).current_snapshot()
    except PublishError:
        raise
    except Exception as exc:  # noqa: BLE001 - the catalog's, the store's or Ray's failure: one line
        raise PublishError(f"{target}: {failure_cause(exc)}") from exc
    figures = {"run": redact(folder.uri), "table": target, "rows_upserted": upserted, "error_rows_kept_ok": len(skip),
               "ids_deleted": len(gone), "snapshot_id": snapshot.snapshot_id if snapshot else None,
               "wall_s": round(time.perf_counter() - started, 2)}
    folder.mark_published(target, {**figures, "published_at": datetime.now(timezone.utc).isoformat()})
    return figures


def publish_pending(root: str, target: str, store: Store = Store(), ray: RayConfig = RayConfig(),
                    up_to: str | None = None, verbose: bool = False) -> list[dict[str, Any]]:
    """Publish every complete run under ``root`` that ``_PUBLISHED`` does not name ``target`` in, oldest first
    (up to and including the run ``up_to``, if given); return each one's figures. The caller holds the root's lock."""
    parse_target(target, "--publish")
    runs = complete_runs(root.rstrip("/"), store)
    if up_to is not None:
        uris = [run.folder.uri for run in runs]
        if up_to.rstrip("/") not in uris:
            raise PublishError(f"{redact(up_to)} is not a complete run of {redact(root)} (no _SUCCESS): "
                               f"finish it with asr-batch resume first")
        runs = runs[:uris.index(up_to.rstrip("/")) + 1]
    return [publish_run(run.folder, target, ray, verbose) for run in runs if target not in run.folder.published()]


def _recorded_target(folder: RunFolder | None, root: str, store: Store) -> str:
    """The ``publish`` in the run's ``run.json`` (of a root: its newest complete run's)."""
    if folder is None:
        folder = complete_runs(root, store)[-1].folder
    target = (folder.record().get("config") or {}).get("publish")
    if not target:
        raise PublishError(f"{redact(folder.uri)}/run.json records no publish table: give --to {EXAMPLE}")
    return target


def publish_command(source: str, to: str | None = None, break_lock: bool = False, verbose: bool = False,
                    store: Store = Store()) -> dict[str, Any]:
    """``asr-batch publish RUN_OR_ROOT``: under the root's lock, publish a run (after the older unpublished ones)
    or every unpublished complete run of a root to ``to`` (default: the recorded ``publish``); return the figures."""
    from jobs.state.lock import RootLock

    started = time.perf_counter()
    source = storage.anchored(source).rstrip("/")
    folder = RunFolder(source, store)
    is_run = folder.exists()
    root = storage.parent(source) if is_run else source
    if not is_run and not complete_runs(root, store):
        raise PublishError(f"{redact(root)}: no run folder here, and no complete run under it (a run folder with _SUCCESS)")
    target = to or _recorded_target(folder if is_run else None, root, store)
    parse_target(target, "--to")
    lock = RootLock(root, "publish", PUBLISH_LOCK_TTL_S, store)
    lock.acquire(break_stale=break_lock)
    try:
        runs = publish_pending(root, target, store, RayConfig(), up_to=source if is_run else None, verbose=verbose)
    finally:
        lock.release()
    return {"table": target, "runs": [r["run"] for r in runs], "rows_upserted": sum(r["rows_upserted"] for r in runs),
            "ids_deleted": sum(r["ids_deleted"] for r in runs), "snapshot_id": runs[-1]["snapshot_id"] if runs else None,
            "wall_s": round(time.perf_counter() - started, 2)}
