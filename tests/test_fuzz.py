"""Seeded mutation fuzzing of what tuneforge reads: real MIDI bytes (a few Nottingham files and
factory files) and checkpoint files, through every reading command of the CLI. Each run must
end cleanly or with one error line: never a traceback, never a hang (an alarm bounds each).

The seed is fixed, so a failure reproduces; the inputs and their number are printed with -s.
"""

from __future__ import annotations

import json
import random
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tests.tiny_models import save_tiny
from tuneforge.cli.app import app
from tuneforge.playback.soundfont import SYSTEM_SOUNDFONTS

NOTTINGHAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nottingham-midi"
SEED = 20261202
MIDI_MUTANTS_PER_SOURCE = 8
CHECKPOINT_MUTANTS = 36
COMMAND_TIMEOUT_S = 20  # far above any honest run of these tiny inputs; a hang trips it

runner = CliRunner()


def mutate(data: bytes, rng: random.Random, *, keep: int = 0) -> bytes:
    """One to three of: flip bits, truncate, splice in a copy of another part, insert bytes,
    set a byte to an edge value; the first ``keep`` bytes are left alone."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if len(data) <= keep:
            break
        kind = rng.choice(("flip", "truncate", "splice", "insert", "byte"))

        def anywhere() -> int:
            return rng.randrange(keep, len(data))

        if kind == "flip":
            for _ in range(rng.randint(1, 4)):
                data[anywhere()] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del data[anywhere() :]
        elif kind == "splice":
            start = anywhere()
            piece = data[start : start + rng.randint(1, 64)]
            at = anywhere()
            data[at:at] = piece
        elif kind == "insert":
            at = anywhere()
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:  # a byte set to an edge value: status bytes, lengths, 0 and 0xFF
            data[anywhere()] = rng.choice((0x00, 0x7F, 0x80, 0xFF, 0xF0, 0xF7))
    return bytes(data)


def mutate_midi(data: bytes, rng: random.Random) -> bytes:
    """A mutant of a MIDI file: half of them keep the header and the first track's chunk
    header, so that the damage reaches the events rather than stopping at the first chunk."""
    return mutate(data, rng, keep=22 if rng.random() < 0.5 else 0)


def mutate_json(document: dict, rng: random.Random) -> dict:
    """A field somewhere in the document set to a value of another type or an extreme."""
    document = json.loads(json.dumps(document))
    holders = []

    def collect(value):
        if isinstance(value, dict):
            holders.extend((value, key) for key in value)
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            holders.extend((value, index) for index in range(len(value)))
            for item in value:
                collect(item)

    collect(document)
    for _ in range(rng.randint(1, 3)):
        holder, key = rng.choice(holders)
        holder[key] = rng.choice(
            (None, -1, 0, 10**9, 10**30, 1.5, "x", [], {}, True, [1, 2, 3], {"a": 1})
        )
    return document


@contextmanager
def alarm(seconds: int):
    """Raise TimeoutError in the test if the block takes longer than ``seconds``."""

    def expired(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_clean(args: list[str], label: str) -> int:
    """Run the CLI; it must exit 0, or 1 with one error line. Returns the exit code."""
    with alarm(COMMAND_TIMEOUT_S):
        result = runner.invoke(app, args)
    if isinstance(result.exception, TimeoutError):
        pytest.fail(f"{label}: `{' '.join(args)}` hung")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{label}: `{' '.join(args)}` raised {result.exception!r}"
    )
    assert result.exit_code in (0, 1), f"{label}: exit {result.exit_code}: {result.output}"
    if result.exit_code == 1:
        lines = [line for line in result.output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, f"{label}: {result.output}"
    return result.exit_code


def midi_sources(folder: Path) -> list[Path]:
    sources = sorted(NOTTINGHAM.glob("*.mid"))[:3] if NOTTINGHAM.is_dir() else []
    sources.append(
        write_midi(
            folder / "factory-a.mid",
            [(60, 0, 4), (64, 4, 8), (67, 8, 16), (57, 16, 32)],
            time_signatures=[(0, 3, 4)],
            tempo_changes=[(0, 100.0), (8, 140.0)],
        )
    )
    sources.append(
        write_midi(
            folder / "factory-b.mid",
            [(48, 0, 8), (52, 0, 8)],
            extra_tracks=[[(72, 2, 6, 9)]],
            zero_velocity_off=True,
        )
    )
    return sources


def test_mutated_midi_through_every_reading_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    rng = random.Random(SEED)
    model = save_tiny(tmp_path / "model", "m")
    mutants_dir = tmp_path / "mutants"
    mutants_dir.mkdir()
    soundfonts = [Path(p) for p in SYSTEM_SOUNDFONTS if Path(p).is_file()]
    started = time.perf_counter()
    mutants = []
    for source in midi_sources(tmp_path / "sources"):
        original = source.read_bytes()
        for index in range(MIDI_MUTANTS_PER_SOURCE):
            path = mutants_dir / f"{source.stem}-{index}.mid"
            path.write_bytes(mutate_midi(original, rng))
            mutants.append(path)
    runs = 0
    for path in mutants:
        commands = [
            ["show", str(path)],
            ["stats", str(path)],
            ["score", str(path), "--model", str(model)],
        ]
        if soundfonts:
            wav = tmp_path / "out.wav"
            commands.append(
                ["render", str(path), "--out", str(wav), "--soundfont", str(soundfonts[0])]
                + ["--sample-rate-hz", "8000", "--max-minutes", "0.5", "--tail-s", "0"]
            )
        for command in commands:
            check_clean(command, path.name)
            runs += 1
    check_clean(["data", "inspect", str(mutants_dir)], "folder of mutants")
    check_clean(["data", "inspect", str(mutants_dir), "--json"], "folder of mutants, cached")
    elapsed_s = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nfuzz: {len(mutants)} mutated MIDI files, {runs + 2} runs, {elapsed_s:.1f} s")


def test_mutated_checkpoints_through_evaluate_and_generate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    rng = random.Random(SEED + 1)
    data = tmp_path / "data"
    for index in range(3):
        write_midi(data / f"{index}.mid", [(60 + index, 0, 8), (64, 8, 16)])
    tensors = save_tiny(tmp_path / "good", "best")
    document = json.loads(tensors.with_suffix(".json").read_text())
    tensor_bytes = tensors.read_bytes()
    started = time.perf_counter()
    runs = 0
    for index in range(CHECKPOINT_MUTANTS):
        folder = tmp_path / f"ckpt-{index}"
        folder.mkdir()
        sidecar, weights = folder / "best.json", folder / "best.safetensors"
        weights.write_bytes(tensor_bytes)
        kind = index % 3
        if kind == 0:  # fields of the wrong type or size
            sidecar.write_text(json.dumps(mutate_json(document, rng)))
        elif kind == 1:  # the JSON text itself damaged
            sidecar.write_bytes(mutate(json.dumps(document).encode(), rng))
        else:  # the tensor file damaged (its header most of all)
            sidecar.write_text(json.dumps(document))
            head = mutate(tensor_bytes[:600], rng)
            weights.write_bytes(head + tensor_bytes[600:])
        check_clean(["evaluate", str(folder), str(data), "--json"], folder.name)
        out = tmp_path / f"gen-{index}"
        check_clean(
            ["generate", "--model", str(folder), "--length", "4", "--out", str(out)], folder.name
        )
        runs += 2
    elapsed_s = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nfuzz: {CHECKPOINT_MUTANTS} mutated checkpoints, {runs} runs, {elapsed_s:.1f} s")
