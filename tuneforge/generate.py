"""From a checkpoint to MIDI files with provenance: the pipeline behind `tuneforge generate`.

Every output records where it came from (model hash, cell, temperature, seed, primer, options)
in a text meta event of the MIDI file and in a sidecar JSON beside it. Nothing time-dependent
goes into either, so the same model, options and seed give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneforge import __version__
from tuneforge.errors import ConfigError
from tuneforge.files import make_folder, replacing, write_text
from tuneforge.sample import SampledStep, SamplingOptions, sample_steps
from tuneforge.stop_signals import interrupts_deferred
from tuneforge.validate import check_numbers

PROVENANCE_PREFIX = "tuneforge-provenance "  # starts the MIDI text meta event
FILE_PREFIX = "tuneforge"


@dataclass
class Generator:
    """A loaded model and what identifies it, ready to sample from."""

    model: torch.nn.Module
    name: str  # the shipped name or the checkpoint's file stem
    model_sha256: str
    steps_per_beat: int
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # the checkpoint's (data_spec, ...)

    @property
    def reads_meter(self) -> bool:
        """Whether the model hears each step's place in its bar."""
        return bool(self.config.get("meter", False))

    def time_signatures_for(self, request: Request) -> list[tuple[int, int]]:
        """The meter of each piece of ``request``: the one it names; else the melody's or the
        primer's; else, for a model that reads meter, drawn per piece from the meters of its
        training data (recorded in the checkpoint); else 4/4."""
        from tuneforge.music.meter import DEFAULT_TIME_SIGNATURE, draw_time_signatures

        count = request.num_pieces
        source = request.melody or request.primer
        if request.time_signature is not None:
            return [request.time_signature] * count
        if source is not None and source.time_signature is not None:
            return [source.time_signature] * count
        shares = self.meta.get("time_signatures")
        if self.reads_meter and shares:  # the checkpoint's schema made it a map of shares
            return draw_time_signatures(shares, count, request.seed)
        return [DEFAULT_TIME_SIGNATURE] * count


def load_generator(spec: str | None, *, device: str = "cpu") -> Generator:
    """Load the model ``spec`` names (a checkpoint path or a shipped name; None: the default)."""
    from tuneforge.checkpoint import checkpoint_hash, load_checkpoint
    from tuneforge.device import choose_device
    from tuneforge.shipped import DEFAULT_MODEL, resolve_model

    path = resolve_model(spec)
    loaded = load_checkpoint(path, device=choose_device(device))
    shipped_name = spec if spec is not None and path.name == f"{spec}.safetensors" else None
    name = shipped_name or (DEFAULT_MODEL if spec is None else _checkpoint_name(loaded.path))
    return Generator(
        model=loaded.model,
        name=name,
        model_sha256=checkpoint_hash(loaded.path),
        steps_per_beat=int(loaded.meta.get("steps_per_beat", 4)),
        config=loaded.config.to_dict(),
        meta=dict(loaded.meta),
    )


def _checkpoint_name(path: Path) -> str:
    """A run's checkpoints are all called best or last: name them after their run folder."""
    if path.stem in ("best", "last") and path.parent.name:
        return f"{path.parent.name}-{path.stem}"
    return path.stem


@dataclass(frozen=True)
class Primer:
    """A roll read from a MIDI file, the opening the pieces continue or the melody they
    harmonize: its frames and where they came from."""

    roll: np.ndarray  # (T0, P) uint8
    file_name: str
    sha256: str
    beats: float | None  # how many beats were asked for; None: the whole file
    onsets: np.ndarray | None = None  # (T0, P) uint8, where the file strikes its notes
    time_signature: tuple[int, int] | None = None  # the meter the file opens in, if it says


def read_primer(path: str | Path, *, steps_per_beat: int, beats: float | None = None) -> Primer:
    """Read a MIDI file as a primer, keeping its first ``beats`` beats (all when None)."""
    from tuneforge.music.meter import opening_time_signature
    from tuneforge.music.midi import read_midi

    path = Path(path)
    if beats is not None and not beats > 0:
        raise ConfigError(f"--primer-beats must be > 0, got {beats}")
    piece = read_midi(path, steps_per_beat=steps_per_beat)
    roll, onsets = piece.roll, piece.onsets
    if beats is not None:
        keep = max(1, round(beats * steps_per_beat))
        roll, onsets = roll[:keep], onsets[:keep]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Primer(
        roll=np.ascontiguousarray(roll),
        file_name=path.name,
        sha256=digest,
        beats=beats,
        onsets=np.ascontiguousarray(onsets),
        time_signature=opening_time_signature(piece.time_signatures)
        if piece.time_signatures
        else None,
    )


@dataclass(frozen=True)
class Request:
    """What to generate."""

    num_steps: int  # sampled steps per piece (the primer comes on top)
    num_pieces: int = 1
    seed: int = 0
    options: SamplingOptions = field(default_factory=SamplingOptions)
    primer: Primer | None = None
    melody: Primer | None = None  # harmonize it; its length is num_steps
    tempo_bpm: float = 120.0
    program: int = 0  # General MIDI program of the written files
    overwrite: bool = False  # replace files of the same name; else pick a new numbered name
    time_signature: tuple[int, int] | None = None  # None: see Generator.time_signatures_for

    def check(self) -> None:
        """Raise :class:`ConfigError` on a number no generation can use (tuneforge.validate)."""
        check_numbers(
            {
                "num_steps": self.num_steps,
                "num_pieces": self.num_pieces,
                "seed": self.seed,
                "temperature": self.options.temperature,
                "max_polyphony": self.options.max_polyphony,
                "tempo_bpm": self.tempo_bpm,
                "program": self.program,
            }
        )


@dataclass(frozen=True)
class GeneratedPiece:
    """One written piece."""

    midi_path: Path
    sidecar_path: Path
    roll: np.ndarray  # (T, P) uint8, primer included
    provenance: dict[str, Any]
    onsets: np.ndarray | None = None  # (T, P) uint8, where notes are struck
    taken_path: Path | None = None  # the name it would have had, were that file not there

    @property
    def time_signatures(self) -> tuple[tuple[int, int, int], ...]:
        """``((0, numerator, denominator),)``: the meter it was written in, as
        :class:`~tuneforge.music.midi.Piece` holds it."""
        from tuneforge.music.meter import parse_time_signature

        numerator, denominator = parse_time_signature(self.provenance["time_signature"])
        return ((0, numerator, denominator),)

    @property
    def duration_s(self) -> float:
        """Length of the piece at the tempo it was written with."""
        spb = self.provenance["steps_per_beat"]
        return len(self.roll) * 60.0 / (self.provenance["tempo_bpm"] * spb)


def provenance_of(
    generator: Generator,
    request: Request,
    piece_index: int,
    time_signature: tuple[int, int] = (4, 4),
) -> dict[str, Any]:
    """The record of where piece ``piece_index`` of ``request`` comes from."""
    from tuneforge.music.meter import format_time_signature

    return {
        "generator": f"tuneforge {__version__}",
        "model": generator.name,
        "model_sha256": generator.model_sha256,
        "model_kind": generator.config.get("kind", "sequence"),
        "cell": generator.config.get("cell"),
        "hidden_size": generator.config.get("hidden_size"),
        "num_layers": generator.config.get("num_layers"),
        "temperature": request.options.temperature,
        "seed": request.seed,
        "piece": piece_index + 1,
        "num_pieces": request.num_pieces,
        "sampled_steps": request.num_steps,
        "steps_per_beat": generator.steps_per_beat,
        "tempo_bpm": request.tempo_bpm,
        "time_signature": format_time_signature(time_signature),
        "program": request.program,
        "options": request.options.to_dict(),
        "primer": _source_record(request.primer),
        "melody": _source_record(request.melody),
    }


def _source_record(source: Primer | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {
        "file": source.file_name,
        "sha256": source.sha256,
        "beats": source.beats,
        "steps": len(source.roll),
    }


def generate(
    generator: Generator,
    request: Request,
    out_dir: str | Path,
    *,
    consume: Callable[[Iterator[np.ndarray]], None] | None = None,
) -> list[GeneratedPiece]:
    """Sample ``request.num_pieces`` pieces in one batch and write MIDI + sidecar JSON each.

    ``consume``, when given, receives the frames ``(P,)`` of the first piece as they are
    sampled (e.g. to play them live) and drives the sampling. If it stops early, for instance
    on Ctrl-C, the rest is still sampled and written before the interruption propagates.
    """
    from tuneforge.music.midi import roll_to_midi

    request.check()
    out_dir = make_folder(out_dir)
    primer_roll = None if request.primer is None else request.primer.roll
    meters = generator.time_signatures_for(request)
    stream = sample_steps(
        generator.model,
        num_steps=request.num_steps,
        batch_size=request.num_pieces,
        options=request.options,
        seed=request.seed,
        primer=primer_roll,
        primer_onsets=None if request.primer is None else request.primer.onsets,
        melody=None if request.melody is None else request.melody.roll,
        time_signature=meters,
    )
    steps: list[SampledStep] = []

    def first_piece() -> Iterator[np.ndarray]:
        if primer_roll is not None:
            yield from primer_roll
        while True:
            # A Ctrl-C waits for the step being sampled (a sampler cut mid-step cannot go on):
            # it then reaches the consumer, and the rest of the piece is still sampled.
            with interrupts_deferred():
                step = next(stream, None)
                if step is not None:
                    steps.append(step)
            if step is None:
                return
            yield step.frame[0].numpy()

    interrupted: BaseException | None = None
    if consume is not None:
        try:
            consume(first_piece())
        except KeyboardInterrupt as error:
            interrupted = error
    steps.extend(stream)  # whatever the consumer did not pull
    if len(steps) < request.num_steps:
        # Ctrl-C landed inside the sampler itself, which cannot resume: nothing to write.
        raise interrupted or KeyboardInterrupt
    sampled = torch.stack([step.frame for step in steps], dim=1).numpy()  # (B, T, P)
    struck = torch.stack([step.onsets for step in steps], dim=1).numpy()  # (B, T, P)
    log_likelihood = torch.stack([step.log_likelihood for step in steps], dim=1).numpy()

    stems = [
        f"{FILE_PREFIX}-{generator.name}-s{request.seed}-{index + 1:02d}"
        for index in range(request.num_pieces)
    ]
    suffix = "" if request.overwrite else free_suffix(out_dir, stems)
    pieces = []
    for index in range(request.num_pieces):
        roll, onsets = sampled[index], struck[index]
        if primer_roll is not None and len(primer_roll):
            primer_onsets = request.primer.onsets
            if primer_onsets is None:
                primer_onsets = primer_roll
            roll = np.concatenate([primer_roll.astype(np.uint8), roll])
            onsets = np.concatenate([np.asarray(primer_onsets, dtype=np.uint8), onsets])
        record = provenance_of(generator, request, index, meters[index])
        stem = stems[index] + suffix
        midi_path = out_dir / f"{stem}.mid"
        with replacing(midi_path) as partial:
            roll_to_midi(
                roll,
                partial,
                onsets=onsets,
                steps_per_beat=generator.steps_per_beat,
                tempo_bpm=request.tempo_bpm,
                program=request.program,
                time_signature=meters[index],
                text_meta=PROVENANCE_PREFIX
                + json.dumps(record, sort_keys=True, separators=(",", ":")),
            )
        sidecar_path = out_dir / f"{stem}.json"
        scored = log_likelihood[index]
        sidecar = {
            **record,
            "midi_file": midi_path.name,
            "length_steps": int(len(roll)),
            # What the model gave the sampled steps (nats, temperature 1), NaN-free for JSON.
            "log_likelihood": float(np.nansum(scored)),
            "scored_steps": int(np.isfinite(scored).sum()),
        }
        write_text(sidecar_path, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        taken = out_dir / f"{stems[index]}.mid" if suffix else None
        pieces.append(GeneratedPiece(midi_path, sidecar_path, roll, record, onsets, taken))
    if interrupted is not None:
        raise interrupted
    return pieces


def free_suffix(out_dir: Path, stems: list[str]) -> str:
    """``""`` when no file of ``stems`` (MIDI, sidecar or WAV) is in ``out_dir``, else the
    first ``-2``, ``-3``, ... that makes every name of the batch new."""
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        names = [f"{stem}{suffix}{ext}" for stem in stems for ext in (".mid", ".json", ".wav")]
        if not any((out_dir / name).exists() or (out_dir / name).is_symlink() for name in names):
            return suffix
        number += 1


def read_provenance(midi_path: str | Path) -> dict[str, Any] | None:
    """The provenance record a generated MIDI file carries, or None if it has none."""
    import mido

    for track in mido.MidiFile(Path(midi_path)).tracks:
        for message in track:
            if message.type == "text" and message.text.startswith(PROVENANCE_PREFIX):
                return json.loads(message.text[len(PROVENANCE_PREFIX) :])
    return None
