"""`tuneforge generate` (sample pieces, write MIDI, optionally play and render) and
`tuneforge models` (list the shipped models)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli.play_cmd import ApiChoice, AudioDriverOption, AudioFileOption, SynthOption
from tuneforge.errors import ConfigError

console = Console(highlight=False)


def generate(
    model: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint path (file, NAME prefix or run folder) or shipped model name."
        ),
    ] = None,
    temp: Annotated[
        float, typer.Option(help="Temperature: logits are divided by it before the sigmoid (> 0).")
    ] = 0.8,
    length: Annotated[
        float | None, typer.Option(help="Length of each piece in beats (default 32).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Length of each piece in steps (instead of --length).")
    ] = None,
    num: Annotated[int, typer.Option(help="Number of pieces, sampled as one batch.")] = 1,
    seed: Annotated[
        int | None, typer.Option(help="Random seed; the same seed and options give the same MIDI.")
    ] = None,
    primer: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="MIDI file the pieces continue."),
    ] = None,
    primer_beats: Annotated[
        float | None, typer.Option(help="Use only the first N beats of the primer.")
    ] = None,
    melody: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Harmonize this MIDI file: its top line is kept and the model writes the parts"
            " under it; the pieces last as long as the melody.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for the MIDI files.")] = Path(
        "out"
    ),
    play: Annotated[
        bool, typer.Option(help="Play the first piece live while it is sampled.")
    ] = False,
    render: Annotated[bool, typer.Option(help="Write a WAV beside each MIDI file.")] = False,
    tempo: Annotated[float, typer.Option(help="Tempo of the written files in bpm.")] = 120.0,
    program: Annotated[int, typer.Option(help="General MIDI program (0 = piano).")] = 0,
    max_polyphony: Annotated[
        int | None, typer.Option(help="Keep at most the K likeliest notes per step.")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="Only notes of this key, e.g. 'G major', 'D dorian'.")
    ] = None,
    pitch_range: Annotated[
        str | None, typer.Option(help="Only pitches in LOW-HIGH, e.g. 48-84 or C3..C6.")
    ] = None,
    max_silence_beats: Annotated[
        float | None,
        typer.Option(help="After this many silent beats, play the likeliest note."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Device for the model: cpu, cuda, mps or auto.")
    ] = "cpu",
    port: Annotated[str | None, typer.Option(help="MIDI output port for --play.")] = None,
    virtual: Annotated[
        str | None, typer.Option(help="Open a virtual MIDI port of this name for --play.")
    ] = None,
    api: Annotated[ApiChoice, typer.Option(help="MIDI API for --play.")] = ApiChoice.auto,
    synth: SynthOption = False,
    audio_driver: AudioDriverOption = None,
    audio_file: AudioFileOption = None,
    soundfont: Annotated[
        Path | None, typer.Option(help="SoundFont for --render (default: system GM font).")
    ] = None,
    stats: Annotated[
        bool,
        typer.Option(
            help="Print the pieces' figures beside the model's training data, and how "
            "much they copy from it (docs/stats.md)."
        ),
    ] = False,
) -> None:
    """Sample new pieces from a model and write them as MIDI files (with provenance)."""
    from tuneforge.generate import Request, load_generator, read_primer
    from tuneforge.generate import generate as run_generation
    from tuneforge.sample import SamplingOptions, parse_pitch_range

    if length is not None and steps is not None:
        raise ConfigError("give either --length (beats) or --steps, not both")
    if primer_beats is not None and primer is None:
        raise ConfigError("--primer-beats needs --primer FILE.mid")
    if melody is not None and (length is not None or steps is not None):
        raise ConfigError("the melody sets the length; drop --length and --steps")
    default_range = (SamplingOptions.lowest_pitch, SamplingOptions.highest_pitch)
    low, high = parse_pitch_range(pitch_range) if pitch_range else default_range
    generator = load_generator(model, device=device)
    spb = generator.steps_per_beat
    tune = None if melody is None else read_primer(melody, steps_per_beat=spb)
    if tune is not None:
        num_steps = len(tune.roll)
    else:
        num_steps = (
            steps if steps is not None else round((32.0 if length is None else length) * spb)
        )
    options = SamplingOptions(
        temperature=temp,
        max_polyphony=max_polyphony,
        lowest_pitch=low,
        highest_pitch=high,
        key=key,
        max_silence_steps=None
        if max_silence_beats is None
        else max(1, round(max_silence_beats * spb)),
    )
    request = Request(
        num_steps=num_steps,
        num_pieces=num,
        seed=secrets.randbelow(2**31) if seed is None else seed,
        options=options,
        primer=None
        if primer is None
        else read_primer(primer, steps_per_beat=spb, beats=primer_beats),
        melody=tune,
        tempo_bpm=tempo,
        program=program,
    )
    consume = None
    if play:
        from tuneforge.playback.outputs import OutputRequest

        where = OutputRequest(port, virtual, api.value, synth, audio_driver, audio_file, soundfont)
        consume = _live_player(where, spb, tempo, program, generator)
    try:
        pieces = run_generation(generator, request, out, consume=consume)
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/yellow]; all notes off")
        raise typer.Exit(130) from None
    if render:
        _render_all(pieces, soundfont)
    table = Table(title=f"model {generator.name}, seed {request.seed}, temperature {temp}")
    for column in ("MIDI file", "steps", "seconds", "notes per step"):
        table.add_column(column)
    for piece in pieces:
        table.add_row(
            str(piece.midi_path),
            str(len(piece.roll)),
            f"{piece.duration_s:.1f}",
            f"{piece.roll.sum(axis=1).mean():.2f}",
        )
    console.print(table)
    if stats:
        from tuneforge.cli.generation_stats import generation_stats_line

        console.print(generation_stats_line(pieces, generator), soft_wrap=True)


def _live_player(where, steps_per_beat, tempo_bpm, program, generator):
    """A consumer for :func:`tuneforge.generate.generate` that plays frames as they arrive."""
    from tuneforge.music.events import frames_to_events
    from tuneforge.playback.live import play_events
    from tuneforge.playback.outputs import open_player_output

    opened = open_player_output(where)
    output = opened.output
    if opened.note:
        console.print(f"[yellow]{opened.note}[/yellow]")
    lowest_pitch = int(generator.config.get("lowest_pitch", 21))

    def consume(frames) -> None:
        console.print(f"playing on {output.api}: {output.port_name} (Ctrl-C stops)")
        try:
            events = frames_to_events(
                frames,
                steps_per_beat=steps_per_beat,
                tempo_bpm=tempo_bpm,
                lowest_pitch=lowest_pitch,
                program=program,
            )
            play_events(events, output)
        finally:
            output.close()

    return consume


def _render_all(pieces, soundfont: Path | None) -> None:
    """Render each generated MIDI file to a WAV beside it."""
    from tuneforge.playback.render import render_midi
    from tuneforge.playback.soundfont import find_soundfont

    soundfont_path = find_soundfont(soundfont)
    for piece in pieces:
        report = render_midi(piece.midi_path, soundfont_path=soundfont_path)
        console.print(f"wrote {report.path} ({report.duration_s:.1f} s)")


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the models shipped with tuneforge."""
    from tuneforge.shipped import DEFAULT_MODEL, list_models, pretrained_root

    shipped = list_models()
    if as_json:
        typer.echo(json.dumps([m.summary() for m in shipped], indent=2, sort_keys=True))
        return
    if not shipped:
        console.print(f"no models shipped in {pretrained_root()}")
        return
    table = Table(
        title=f"shipped models ({pretrained_root()})",
        caption="* used when --model is not given",
    )
    for column in ("name", "cell", "parameters", "data", "valid NLL", "test NLL", "size"):
        table.add_column(column)
    for model in shipped:
        card = model.card
        summary = model.summary()
        name = model.name + (" *" if model.name == DEFAULT_MODEL else "")
        table.add_row(
            name,
            str(summary["cell"] or "?"),
            f"{card['parameters']:,}" if isinstance(card.get("parameters"), int) else "?",
            str(card.get("data", "?")),
            _number(card.get("valid_nll")),
            _number(card.get("test_nll")),
            _size(model.size_bytes),
        )
    console.print(table)


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.0f} kB"


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "?"


def register(app: typer.Typer) -> None:
    """Add `generate` and `models` to the app."""
    app.command()(generate)
    app.command()(models)
