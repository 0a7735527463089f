"""Where ``--publish`` goes: an ``iceberg://CATALOG/NAMESPACE.TABLE`` string, and the catalog it names.

The catalog is configured the way pyiceberg users configure theirs: ``load_catalog(CATALOG)``
reads ``$PYICEBERG_HOME/.pyiceberg.yaml``, ``~/.pyiceberg.yaml`` and the
``PYICEBERG_CATALOG__<NAME>__<KEY>`` environment variables (REST, Glue, SQL, Hive…). A
catalog configured nowhere, for a local output root, is the embedded default: pyiceberg's
SQL catalog on SQLite at ``<root>/_iceberg/catalog.db`` with its warehouse in
``<root>/_iceberg/warehouse`` (``_iceberg`` holds no ``run.json``: it is no run folder).
Only the ``iceberg://…`` string is ever recorded; the catalog's properties (credentials
among them) stay in the environment and in memory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from asr_actor import storage
from asr_actor.config import ConfigError
from asr_actor.errors import AsrBatchError, describe, redact

SCHEME = "iceberg://"
ICEBERG_DIR = "_iceberg"  # under a local output root: the embedded catalog's database and warehouse
CATALOG_DB = "catalog.db"  # SQLite file of the embedded catalog
WAREHOUSE = "warehouse"  # folder of the embedded catalog's tables
_TARGET = re.compile(r"^iceberg://(?P<catalog>[A-Za-z0-9_-]+)/(?P<namespace>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(?P<table>[A-Za-z_]\w*)$")
EXAMPLE = "iceberg://local/asr.transcripts"


class PublishError(AsrBatchError):
    """The table cannot be reached, created or written; the run folders are untouched."""


@dataclass(frozen=True)
class Target:
    """A parsed ``iceberg://CATALOG/NAMESPACE.TABLE``."""

    uri: str  # the string as given: what run.json and the _PUBLISHED marker record
    catalog: str  # a name pyiceberg's config knows, or the embedded default's
    namespace: str  # dotted for nested namespaces
    table: str

    @property
    def identifier(self) -> str:
        """``NAMESPACE.TABLE``, as pyiceberg and Ray's ``write_iceberg`` take it."""
        return f"{self.namespace}.{self.table}"


def parse_target(uri: str, what: str = "publish") -> Target:
    """``uri`` as a :class:`Target`, or a one-line :class:`ConfigError` saying the form."""
    match = _TARGET.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise ConfigError(f"{what}: {redact(str(uri))!r} is not iceberg://CATALOG/NAMESPACE.TABLE (e.g. {EXAMPLE})")
    return Target(uri, match["catalog"], match["namespace"], match["table"])


def catalog_properties(target: Target, root: str) -> dict[str, Any]:
    """The properties ``load_catalog(target.catalog, **them)`` needs: pyiceberg's own config of that
    name, read now (not when pyiceberg was imported), else the embedded default under a local ``root``."""
    from pyiceberg.utils.config import Config

    configured = Config().get_catalog_config(target.catalog)
    if configured:
        return dict(configured)
    if not storage.is_local(root):
        env = f"PYICEBERG_CATALOG__{target.catalog.upper().replace('-', '_')}__URI"
        raise PublishError(f"{target.uri}: catalog {target.catalog!r} is configured nowhere, and the embedded SQLite "
                           f"catalog needs a local output root, not {redact(root)}; configure it as pyiceberg reads it "
                           f"(~/.pyiceberg.yaml catalog: {target.catalog}: …, or {env} and its other keys)")
    _, path = storage.fs_and_path(root)
    folder = os.path.join(path, ICEBERG_DIR)
    try:
        os.makedirs(os.path.join(folder, WAREHOUSE), exist_ok=True)
    except OSError as exc:
        raise PublishError(f"{target.uri}: cannot make the embedded catalog's folder {folder} "
                           f"({type(exc).__name__}: {describe(exc)})") from exc
    return {"type": "sql", "uri": f"sqlite:///{os.path.join(folder, CATALOG_DB)}",
            "warehouse": f"file://{os.path.join(folder, WAREHOUSE)}"}


def load_catalog(target: Target, properties: dict[str, Any]) -> Any:
    """pyiceberg's catalog of ``target`` with ``properties`` (:func:`catalog_properties`); one-line error."""
    from pyiceberg.catalog import load_catalog as pyiceberg_load

    try:
        return pyiceberg_load(target.catalog, **properties)
    except Exception as exc:  # noqa: BLE001 - any driver's failure (SQLite, HTTP, AWS): told in one line
        raise PublishError(f"{target.uri}: cannot open catalog {target.catalog!r} "
                           f"({type(exc).__name__}: {describe(exc)})") from exc
