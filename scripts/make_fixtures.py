#!/usr/bin/env python3
"""Regenerate the speech fixtures under ``tests/data/`` from the project's own texts.

Speech comes from festival's HTS voice (``voice_cmu_us_slt_arctic_hts``), the clearest
of the Debian synthesisers for ``tiny.en`` (about 10% WER, espeak-ng about 30%), so a
test can tell a real regression from synthetic noise. ffmpeg encodes the containers,
sox builds the pauses. The output is committed: tests need none of these tools.

    apt-get install festival festvox-us-slt-hts ffmpeg sox
    python scripts/make_fixtures.py            # writes tests/data/{good,bad,nonspeech}
    python scripts/make_fixtures.py --only quality   # just the quality fixtures, the rest untouched
    python scripts/make_fixtures.py --only channels  # just tests/data/channels/, from the committed good/ files

Quality fixtures (issue 13): an 8 kHz recording, speech with a long silence inside, speech
under room noise, each with ``NAME.words.tsv`` (festival's own word timings: word, start
s, end s), and ``nonspeech/``: white noise, music-like tones and room tone, which must
give empty transcripts.

Channel fixture (issue 14, ``audio.channels: split``): ``channels/``, a stereo call made
from two committed good fixtures, one voice per side, the second starting while the
first still speaks; ``NAME.chN.txt`` is the reference of channel N.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

VOICE = "(voice_cmu_us_slt_arctic_hts)"
PAUSES_S = (1.5, 2.5, 4.0, 1.0, 3.0, 6.0)  # silences between long-form paragraphs, cycled

# name -> (text, ffmpeg output options). Each short fixture tests one container/shape.
SHORT = {
    "wav16k_mono.wav": (
        "The night shift starts the transcription job at ten, and by morning every "
        "recording in the bucket has a transcript beside it.",
        ["-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le"],
    ),
    "wav44k_stereo.wav": (
        "Please send the quarterly report to the finance team before Friday.",
        ["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"],
    ),
    "flac16k_mono.flac": (
        "A corrupt file should never stop the whole batch. It becomes one error row, "
        "and the other files go on as if nothing happened.",
        ["-ar", "16000", "-ac", "1", "-c:a", "flac"],
    ),
    "mp3_22k_mono.mp3": (
        "The weather station on the hill recorded strong winds and heavy rain for three days.",
        ["-ar", "22050", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "48k"],
    ),
    "aac24k_mono.m4a": (
        "Our library opens at nine in the morning and closes at six in the evening on weekdays.",
        ["-ar", "24000", "-ac", "1", "-c:a", "aac", "-b:a", "48k"],
    ),
    "opus48k_mono.ogg": (
        "She planted tomatoes, beans and sunflowers in the garden behind the old stone house.",
        ["-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "32k"],
    ),
    "video_with_audio.mp4": (
        "This clip carries a small video track, and only its sound should be transcribed.",
        ["-ar", "16000", "-ac", "1", "-c:a", "aac", "-b:a", "48k"],
    ),
}

LONG_NAME = "long_pauses.ogg"
LONG = [
    "Welcome to the weekly planning meeting. Today we will go over the storage costs, "
    "the new transcription pipeline, and the schedule for the next release.",
    "First, storage. Last month we kept about forty terabytes of audio in the main bucket. "
    "Most of it is older than a year and is almost never read again.",
    "We agreed to move those recordings to a colder storage class. The transcripts stay "
    "in the warm tier, because people search them every day.",
    "Second, the transcription pipeline. The old script opened one file at a time, ran the "
    "model on it, and printed how long it took. It was simple, but it was slow.",
    "The new job reads a manifest, fetches the audio in parallel, and packs many short "
    "recordings into one batch for the model. The graphics cards stay busy the whole time.",
    "When a worker dies in the middle of the night, the job can be resumed from its run "
    "folder. Files that are already done are skipped, and nothing is written twice.",
    "A broken file no longer stops the run. It becomes a row with an error message that "
    "says which stage failed and why, so someone can look at it in the morning.",
    "Third, the schedule. We plan to test the job on a small bucket next week, then on the "
    "full archive the week after. If the numbers look good, it becomes the nightly job.",
    "Maria will write the runbook for the operations team. Daniel will measure the "
    "throughput on one card and on a small cluster, and compare it with the old script.",
    "Before we close, a reminder about the office. The kitchen will be painted on Thursday, "
    "so please take your mugs and plates home on Wednesday evening.",
    "Finally, thank you all for the careful work on the test recordings. Clear audio makes "
    "it much easier to tell a real mistake from noise.",
    "One more thing about the budget. The cloud bill for the graphics cards was higher than "
    "planned in October, because a test cluster ran for a whole weekend with nobody using it.",
    "From now on, every test cluster shuts itself down after two hours without work. Please "
    "check the dashboard before you leave on Friday afternoon.",
    "Someone asked whether the new job can translate as well as transcribe. It can, for the "
    "models that know more than one language, and the task is chosen per file.",
    "The question of long recordings also came up. A two hour interview is cut into thirty "
    "second windows, and the pieces are stitched back together without losing a word.",
    "Our next meeting is on the third of December at half past ten. Bring your numbers, and "
    "bring questions. That is all for today. Thank you, and have a good afternoon.",
]


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def speak(text: str, out_wav: Path, tmp: Path) -> None:
    txt = tmp / (out_wav.stem + ".txt")
    txt.write_text(text + "\n", encoding="utf-8")
    run("text2wave", "-eval", VOICE, str(txt), "-o", str(out_wav))


def _duration(wav: Path) -> str:
    return subprocess.run(["soxi", "-D", str(wav)], check=True, capture_output=True, text=True).stdout.strip()


def encode(src: Path, dest: Path, opts: list[str], video: bool = False) -> None:
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src)]
    if video:  # a tiny black picture track under the speech
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:r=2",
               "-i", str(src), "-t", _duration(src), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-map", "0:v", "-map", "1:a"]
    run(*cmd, *opts, "-map_metadata", "-1", str(dest))


def write_good(good: Path, tmp: Path) -> None:
    for name, (text, opts) in SHORT.items():
        wav = tmp / (Path(name).stem + ".src.wav")
        speak(text, wav, tmp)
        encode(wav, good / name, opts, video=name.endswith(".mp4"))
        (good / name).with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    parts = []
    for i, para in enumerate(LONG):
        wav = tmp / f"long_{i:02d}.wav"
        speak(para, wav, tmp)
        parts.append(str(wav))
        gap = tmp / f"gap_{i:02d}.wav"
        run("sox", "-n", "-r", "32000", "-c", "1", "-b", "16", str(gap), "trim", "0", str(PAUSES_S[i % len(PAUSES_S)]))
        parts.append(str(gap))
    joined = tmp / "long.wav"
    run("sox", *parts[:-1], str(joined))
    encode(joined, good / LONG_NAME, ["-ar", "16000", "-ac", "1", "-c:a", "libopus", "-b:a", "24k"])
    (good / LONG_NAME).with_suffix(".txt").write_text(" ".join(LONG) + "\n", encoding="utf-8")


QUALITY_TEXTS = {
    "wav8k_mono.wav": "Call the help desk at eight in the morning if the printer on the second floor is broken.",
    "silence_inside_speech.flac": ("The first part of the call ends here.",
                                   "After a long quiet pause, the second speaker finally answers the question."),
    "room_noise_speech.flac": "The fans in the server room are loud, but every word of this sentence should survive.",
}
INNER_SILENCE_S = 14.0  # between the two sentences of silence_inside_speech.flac
SPEECH_RATE = 32000  # festival's HTS voice


def speak_words(text: str, out_wav: Path, tmp: Path) -> list[tuple[str, float, float]]:
    """Speak ``text`` into ``out_wav``; return festival's word timings (word, start s, end s)."""
    script = tmp / (out_wav.stem + ".scm")
    times = tmp / (out_wav.stem + ".times")
    quoted = text.replace("\\", "").replace('"', "")
    script.write_text(
        f"{VOICE}\n(set! utt (utt.synth (Utterance Text \"{quoted}\")))\n"
        f"(utt.save.wave utt \"{out_wav}\" 'riff)\n"
        f"(set! fd (fopen \"{times}\" \"w\"))\n"
        "(mapcar (lambda (w) (format fd \"%s\\t%f\\t%f\\n\" (item.name w) (item.feat w \"word_start\") "
        "(item.feat w \"word_end\"))) (utt.relation.items utt 'Word))\n(fclose fd)\n"
    )
    run("festival", "-b", str(script))
    return [(w, float(a), float(b)) for w, a, b in (line.split("\t") for line in times.read_text().splitlines())]


def _write_words(path: Path, words: list[tuple[str, float, float]]) -> None:
    path.write_text("".join(f"{w}\t{a:.3f}\t{b:.3f}\n" for w, a, b in words), encoding="utf-8")


def write_quality(good: Path, nonspeech: Path, tmp: Path) -> None:
    """Speech fixtures with word timings, and non-speech that must transcribe to nothing."""
    name = "wav8k_mono.wav"
    wav = tmp / "w8.wav"
    words = speak_words(QUALITY_TEXTS[name], wav, tmp)
    encode(wav, good / name, ["-ar", "8000", "-ac", "1", "-c:a", "pcm_s16le"])
    _write_words((good / name).with_suffix(".words.tsv"), words)

    name = "silence_inside_speech.flac"
    first, second = QUALITY_TEXTS[name]
    a, b, gap = tmp / "s1.wav", tmp / "s2.wav", tmp / "gap.wav"
    words_a, words_b = speak_words(first, a, tmp), speak_words(second, b, tmp)
    run("sox", "-n", "-r", str(SPEECH_RATE), "-c", "1", "-b", "16", str(gap), "trim", "0", str(INNER_SILENCE_S))
    joined = tmp / "inside.wav"
    run("sox", str(a), str(gap), str(b), str(joined))
    shift = float(_duration(a)) + INNER_SILENCE_S
    encode(joined, good / name, ["-ar", "16000", "-ac", "1", "-c:a", "flac"])
    _write_words((good / name).with_suffix(".words.tsv"), words_a + [(w, s + shift, e + shift) for w, s, e in words_b])
    (good / name).with_suffix(".txt").write_text(f"{first} {second}\n", encoding="utf-8")

    name = "room_noise_speech.flac"
    speech, noise, mixed = tmp / "rn.wav", tmp / "noise.wav", tmp / "mixed.wav"
    words = speak_words(QUALITY_TEXTS[name], speech, tmp)
    run("sox", "-n", "-r", str(SPEECH_RATE), "-c", "1", "-b", "16", str(noise), "synth", _duration(speech),
        "pinknoise", "vol", "0.04")  # about 15 dB below the speech
    run("sox", "-m", str(speech), str(noise), str(mixed))
    encode(mixed, good / name, ["-ar", "16000", "-ac", "1", "-c:a", "flac"])
    _write_words((good / name).with_suffix(".words.tsv"), words)
    for name in ("wav8k_mono.wav", "room_noise_speech.flac"):
        (good / name).with_suffix(".txt").write_text(QUALITY_TEXTS[name] + "\n", encoding="utf-8")

    run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(nonspeech / "white_noise_10s.flac"),
        "synth", "10", "whitenoise", "vol", "0.3")
    run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(nonspeech / "room_tone_20s.flac"),
        "synth", "20", "brownnoise", "vol", "0.05")
    notes = []
    for i, chord in enumerate((("C4", "E4", "G4"), ("A3", "C4", "E4"), ("F3", "A3", "C4"), ("G3", "B3", "D4")) * 2):
        note = tmp / f"note{i}.wav"
        run("sox", "-n", "-r", "16000", "-b", "16", str(note), "synth", "1", *(x for n in chord for x in ("pluck", n)),
            "remix", "-", "fade", "0", "1", "0.3", "vol", "0.5")
        notes.append(str(note))
    joined = tmp / "tones.wav"
    run("sox", *notes, str(joined))
    encode(joined, nonspeech / "tones_8s.ogg", ["-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "32k"])


# name -> (left file, right file, s of silence before the right one starts), all from good/
CHANNELS = {"overlap_stereo.flac": ("flac16k_mono.flac", "mp3_22k_mono.mp3", 2.0)}


def write_channels(good: Path, channels: Path, tmp: Path) -> None:
    """Two voices that talk over each other, one per side of a 16 kHz stereo FLAC."""
    for name, (left, right, delay_s) in CHANNELS.items():
        sides = []
        for i, (src, pad) in enumerate(((left, 0.0), (right, delay_s))):
            mono = tmp / f"side{i}.wav"
            run("ffmpeg", "-y", "-loglevel", "error", "-i", str(good / src), "-ar", "16000", "-ac", "1",
                "-c:a", "pcm_s16le", str(mono))
            padded = tmp / f"side{i}.pad.wav"
            run("sox", str(mono), str(padded), "pad", str(pad))
            sides.append(str(padded))
        joined = tmp / "stereo.wav"
        run("sox", "-M", *sides, str(joined))  # one input per channel, the shorter padded with silence
        encode(joined, channels / name, ["-ar", "16000", "-ac", "2", "-c:a", "flac"])
        for ch, src in enumerate((left, right)):
            (channels / name).with_suffix(f".ch{ch}.txt").write_text(
                (good / src).with_suffix(".txt").read_text(encoding="utf-8"), encoding="utf-8")


def write_bad(good: Path, bad: Path, tmp: Path) -> None:
    """Inputs the job must turn into error rows (or empty transcripts), never crashes."""
    (bad / "empty.wav").write_bytes(b"")
    flac = (good / "flac16k_mono.flac").read_bytes()
    (bad / "truncated.flac").write_bytes(flac[: len(flac) * 2 // 5])
    mp3 = (good / "mp3_22k_mono.mp3").read_bytes()
    (bad / "truncated.mp3").write_bytes(mp3[: len(mp3) * 2 // 5])
    (bad / "random_bytes.wav").write_bytes(random.Random(1234).randbytes(48_000))
    (bad / "text_file.m4a").write_text("this is not audio, only a text file with an audio name\n")
    run("ffmpeg", "-y", "-loglevel", "error", "-i", str(good / "wav16k_mono.wav"), "-t", "0.1",
        "-c:a", "pcm_s16le", str(bad / "short_0.1s.wav"))
    run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(bad / "silence_30s.flac"), "trim", "0", "30")
    run("ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=blue:s=64x64:r=2", "-t", "2",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-an", str(bad / "no_audio_stream.mp4"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "data")
    parser.add_argument("--only", choices=["quality", "channels"],
                        help="write only these fixtures, leave the others as they are")
    args = parser.parse_args()
    tools = ("ffmpeg", "sox") if args.only == "channels" else ("text2wave", "festival", "ffmpeg", "sox")
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install festival festvox-us-slt-hts ffmpeg sox")
    good, bad, nonspeech = args.out / "good", args.out / "bad", args.out / "nonspeech"
    channels = args.out / "channels"
    fresh = {None: (good, bad, nonspeech, channels), "quality": (nonspeech,), "channels": (channels,)}[args.only]
    for d in fresh:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only:
            write_good(good, Path(tmp))
            write_bad(good, bad, Path(tmp))
        if args.only != "channels":
            write_quality(good, nonspeech, Path(tmp))
        if args.only in (None, "channels"):
            write_channels(good, channels, Path(tmp))
    print(args.out)


if __name__ == "__main__":
    main()
