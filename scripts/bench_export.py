"""Benchmark of ``export ROOT`` at scale: wall time and the peak memory of each process, per engine.

    python scripts/bench_export.py [--ids 1000000] [--engines ray,local] [--root DIR] [--publish]

Builds a synthetic output root (:mod:`bench_parts.synthetic_root`: one full run over
``--ids`` inputs, then ``--nights`` incremental nights re-transcribing ``--change`` of
them, ~2 KB of text and 10 segments a row), or reuses ``--root`` when it already holds
runs; then runs ``asr-batch export ROOT --engine E`` as a user would, in a subprocess,
sampling the memory of its whole process tree (the driver and, for ``ray``, Ray's own
processes and workers). With ``--publish``, then ``asr-batch publish RUN --to
iceberg://bench/…`` for each run, oldest first, into a new table of a SQL catalog on
SQLite in a temporary folder: the full run, then each night (the nightly upsert).
Prints one JSON document. No figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_parts import peak_memory, synthetic_root  # noqa: E402


def _export(root: Path, out: Path, engine: str) -> dict:
    argv = [sys.executable, "-m", "jobs.cli", "export", str(root), "--to", str(out), "--engine", engine]
    measured = peak_memory.run_measured(argv, cwd=Path(__file__).resolve().parent.parent)
    if measured["returncode"] != 0:
        raise SystemExit(f"bench_export: export --engine {engine} exited {measured['returncode']}")
    figures = json.loads(measured.pop("stdout").strip().splitlines()[-1])
    return {**measured, "rows": figures["rows"], "parts": figures.get("parts"), "export_wall_s": figures["wall_s"]}


def _publish(root: Path, catalog: Path) -> dict:
    """Publish every run under ``root``, oldest first, into a new table; the figures of each, and the table's rows."""
    import os

    from jobs.state.history import complete_runs

    env = {**os.environ, "PYICEBERG_CATALOG__BENCH__TYPE": "sql",
           "PYICEBERG_CATALOG__BENCH__URI": f"sqlite:///{catalog}/catalog.db",
           "PYICEBERG_CATALOG__BENCH__WAREHOUSE": f"file://{catalog}/warehouse"}
    catalog.mkdir()
    target = f"iceberg://bench/asr.t{int(time.time())}"  # a new table: earlier runs of the bench marked theirs
    runs = {}
    for run in complete_runs(str(root)):
        argv = [sys.executable, "-m", "jobs.cli", "publish", run.folder.uri, "--to", target]
        measured = peak_memory.run_measured(argv, cwd=Path(__file__).resolve().parent.parent, env=env)
        if measured["returncode"] != 0:
            raise SystemExit(f"bench_export: publish {run.folder.uri} exited {measured['returncode']}")
        figures = json.loads(measured.pop("stdout").strip().splitlines()[-1])
        runs[run.folder.uri.rsplit("/", 1)[-1]] = {**measured, "rows_upserted": figures["rows_upserted"],
                                                   "ids_deleted": figures["ids_deleted"],
                                                   "publish_wall_s": figures["wall_s"]}
    os.environ.update({k: v for k, v in env.items() if k.startswith("PYICEBERG_CATALOG__BENCH__")})
    from pyiceberg.catalog import load_catalog

    table = load_catalog("bench").load_table(target.rsplit("/", 1)[-1])
    return {"table": target, "runs": runs, "table_rows": table.scan(selected_fields=("id",)).to_arrow().num_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000, help="inputs of the full run")
    parser.add_argument("--nights", type=int, default=3, help="incremental runs after the full one")
    parser.add_argument("--change", type=float, default=0.10, help="share of the inputs each night takes again")
    parser.add_argument("--engines", default="ray", help="comma-separated: ray, local (local needs ~19 KB per row read)")
    parser.add_argument("--root", help="where the synthetic root is (reused if it holds runs); default a temporary folder")
    parser.add_argument("--publish", action="store_true", help="also publish every run to a new Iceberg table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "root"
        started = time.perf_counter()
        if not (root.is_dir() and any(root.iterdir())):
            synthetic_root.build(str(root), args.ids, args.nights, args.change)
        report = {"machine": platform.processor() or platform.machine(), "ids": args.ids, "nights": args.nights,
                  "change": args.change, "root_built_s": round(time.perf_counter() - started, 1),
                  "root_bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()), "export": {}}
        for engine in args.engines.split(","):
            report["export"][engine] = _export(root, Path(tmp) / f"out-{engine}", engine)
        if args.publish:
            report["publish"] = _publish(root, Path(tmp) / "catalog")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
