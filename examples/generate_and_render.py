"""Generate pieces with a model and render them to WAV from Python.

    python examples/generate_and_render.py [--model NAME_OR_RUN] [--num N] [--beats B] [--out DIR]

The default model is the shipped `default`; give a run folder (e.g. runs/example-lstm from
train_model.py) or a checkpoint to use your own. Each piece is written as MIDI with a JSON
sidecar of its provenance, then rendered offline through FluidSynth with a General MIDI
SoundFont (the system's, or $TUNEFORGE_SOUNDFONT).
"""

from __future__ import annotations

import argparse

from tuneforge.generate import Request, generate, load_generator
from tuneforge.playback.render import render_midi
from tuneforge.playback.soundfont import find_soundfont
from tuneforge.sample import SamplingOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped name, run folder or checkpoint")
    parser.add_argument("--num", type=int, default=2, help="pieces, sampled as one batch")
    parser.add_argument("--beats", type=float, default=16, help="length of each piece")
    parser.add_argument("--out", default="out/example")
    args = parser.parse_args()

    generator = load_generator(args.model, device="cpu")
    # Sampling constraints: temperature, at most 4 notes at once, only the notes of G major.
    options = SamplingOptions(temperature=0.9, max_polyphony=4, key="G major")
    request = Request(
        num_steps=round(args.beats * generator.steps_per_beat),
        num_pieces=args.num,
        seed=7,  # the same seed and options give the same MIDI
        options=options,
        tempo_bpm=110,
    )
    pieces = generate(generator, request, args.out)

    soundfont = find_soundfont()
    for piece in pieces:
        report = render_midi(piece.midi_path, soundfont_path=soundfont)
        notes_per_step = piece.roll.sum(axis=1).mean()
        print(
            f"{piece.midi_path}: {piece.duration_s:.1f} s, {notes_per_step:.2f} notes per step; "
            f"{piece.midi_path.with_suffix('.wav')}: {report.duration_s:.1f} s, "
            f"peak {report.peak:.2f}"
        )


if __name__ == "__main__":
    main()
