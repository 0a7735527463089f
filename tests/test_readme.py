"""The README's promises as a newcomer meets them: its run command, and every ``asr-batch`` command it shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDER = re.compile(r"\[|\]|…|\.\.\.")  # a synopsis, not a command line: only its flags are checked
SHELL_SPLIT = re.compile(r"\s(?:&&|\|\||;|\||>>?|2>&1)\s")


def _bundled_inputs() -> set[str]:
    from jobs.store.manifest import AUDIO_SUFFIXES

    return {str(p) for p in DATA.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES}


@pytest.mark.slow
def test_the_readme_run_command_runs_the_embedded_default_and_shows_every_input(tmp_path):
    assert "\nbash scripts/demo.sh\n" in README  # the command as the README writes it
    env = {**os.environ, "ASR_BATCH_CACHE": str(tmp_path / "cache")}  # a newcomer's empty model cache
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    run = re.search(r"; output (\S+)$", proc.stdout, re.M)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Traceback" not in proc.stdout + proc.stderr
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert sorted(r["id"] for r in rows) == sorted(_bundled_inputs())  # one line per bundled input
        for row in rows:
            assert set(row) == {"id", "duration_s", "text", "error"}
            assert (row["text"] is None) != (row["error"] is None), row  # a transcript (maybe empty) or an error
            if row["error"] is not None:
                assert re.match(r"^(fetch|decode|features|transcribe): \S", row["error"]), row  # stage: cause
        assert any(r["text"] == "" for r in rows) and any(r["error"] for r in rows) and any(r["text"] for r in rows)
        assert "state      complete" in proc.stdout  # asr-batch status on the run
        folder = Path(run[1])
        assert {p.name for p in folder.iterdir()} == {"run.json", "manifest.parquet", "data", "_SUCCESS"}
        success = json.loads((folder / "_SUCCESS").read_text())
        assert success["run_ok"] + success["run_failed"] == len(rows)
    finally:
        if run and Path(run[1]).parent == ROOT / "runs":
            shutil.rmtree(run[1], ignore_errors=True)


def _readme_commands() -> list[str]:
    """Every ``asr-batch …`` command the README shows in code (fenced blocks and inline), one per shell command."""
    text = README.replace("\\\n", " ")
    fenced = re.findall(r"^ *```[a-z]*\n(.*?)^ *```", text, re.M | re.S)
    lines = re.findall(r"`(asr-batch [^`]*)`", text)
    for block in fenced:  # a block with `$ ` prompts shows output too: only its prompted lines are commands
        prompted = re.findall(r"^ *\$ (.*)$", block, re.M)
        lines += prompted or block.splitlines()
    commands = []
    for line in lines:
        for part in SHELL_SPLIT.split(" " + line.split(" # ")[0] + " "):
            part = re.sub(r"^\s*(?:\$ )?(?:\S*/)?asr-batch ", "asr-batch ", part).strip()
            if part.startswith("asr-batch ") and not part.startswith("asr-batch: "):
                commands.append(part)
    return sorted(set(commands))


def _options(parser) -> dict[str, set[str]]:
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {"": {s for a in parser._actions for s in a.option_strings}}
    for name, command in sub.choices.items():
        out[name] = {s for a in command._actions for s in a.option_strings}
    return out


def test_every_readme_command_and_flag_exists_in_the_cli():
    from jobs.cli import build_parser

    parser = build_parser()
    options = _options(parser)
    commands = _readme_commands()
    assert len(commands) >= 15 and any(c.startswith("asr-batch run ") for c in commands)
    for command in commands:
        command = re.sub(r"\$\([^)]*\)", "X", command)  # a shell substitution is one value
        words = command.split()
        name = "" if words[1].startswith("-") else words[1]
        assert name in options, f"README shows an unknown command: {command}"
        flags = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", " ".join(words[2:] if name else words[1:])))
        assert flags <= options[name], f"README shows {sorted(flags - options[name])} that `asr-batch {name}` lacks: {command}"
        if name and len(words) > 2 and not PLACEHOLDER.search(command):  # not a bare mention of the command
            try:
                parser.parse_args(shlex.split(command)[1:])
            except SystemExit:
                pytest.fail(f"README's command does not parse: {command}")


def test_every_config_key_the_readme_documents_exists():
    import typing

    from jobs.config import JobConfig

    def nested(cls, prefix=""):  # resolved annotations: the config modules use `from __future__ import annotations`
        out = set()
        for name, kind in typing.get_type_hints(cls).items():
            out.add(prefix + name)
            if isinstance(kind, type) and hasattr(kind, "__dataclass_fields__"):
                out |= nested(kind, f"{prefix}{name}.")
        return out

    known = nested(JobConfig)
    documented = set()
    for row in re.findall(r"^\| (`[a-z_]+\.[a-z_.]+`(?:, `[a-z_]+`)*) \|", README, re.M):
        first, *siblings = re.findall(r"`([^`]+)`", row)
        documented |= {first, *(first.rsplit(".", 1)[0] + "." + s for s in siblings)}
    documented |= set(re.findall(r"--set ([a-z_]+(?:\.[a-z_]+)+)=", README))
    assert len(documented) >= 40
    assert documented <= known, f"the README documents config keys that do not exist: {sorted(documented - known)}"
