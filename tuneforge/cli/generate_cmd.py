"""`tuneforge generate` (sample pieces, write MIDI, optionally play and render) and
`tuneforge models` (list the shipped models)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneforge.cli import panels
from tuneforge.cli.device_options import DEFAULT_DEVICE, DeviceOption
from tuneforge.cli.play_cmd import ApiChoice, AudioDriverOption, AudioFileOption, SynthOption
from tuneforge.errors import ConfigError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def generate(
    model: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint path (file, NAME prefix or run folder) or shipped model name.",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    temp: Annotated[
        float,
        typer.Option(
            "--temperature",
            "--temp",
            help="Temperature: logits are divided by it before the sigmoid (> 0).",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = 0.8,
    length: Annotated[
        float | None,
        typer.Option(
            help="Length of each piece in beats (default 32).", rich_help_panel=panels.SAMPLING
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--num-steps",
            "--steps",
            help="Length of each piece in steps (instead of --length).",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    num: Annotated[
        int,
        typer.Option(
            "--num-pieces",
            "--num",
            help="Number of pieces, sampled as one batch.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = 1,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed; the same seed and options give the same MIDI.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    primer: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="MIDI file the pieces continue.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    primer_beats: Annotated[
        float | None,
        typer.Option(
            help="Use only the first N beats of the primer.", rich_help_panel=panels.SAMPLING
        ),
    ] = None,
    melody: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Harmonize this MIDI file: its top line is kept and the model writes the parts"
            " under it; the pieces last as long as the melody.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    max_polyphony: Annotated[
        int | None,
        typer.Option(
            help="Keep at most the K likeliest notes per step.", rich_help_panel=panels.SAMPLING
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="Only notes of this key, e.g. 'G major', 'D dorian'.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    pitch_range: Annotated[
        str | None,
        typer.Option(
            help="Only pitches in LOW-HIGH, e.g. 48-84 or C3..C6.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    max_silence_beats: Annotated[
        float | None,
        typer.Option(
            help="After this many silent beats, play the likeliest note.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    time_signature: Annotated[
        str | None,
        typer.Option(
            "--time-signature",
            "--meter",
            metavar="N/D",
            help="Meter of the pieces, e.g. 6/8 (default: the melody's or primer's; else, for a"
            " model that reads meter, drawn per piece from its training data's meters; else"
            " 4/4).",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            file_okay=False, help="Folder for the MIDI files.", rich_help_panel=panels.OUTPUT
        ),
    ] = Path("out"),
    tempo: Annotated[
        float,
        typer.Option(
            "--tempo-bpm",
            "--tempo",
            help="Tempo of the written files in bpm.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = 120.0,
    program: Annotated[
        int, typer.Option(help="General MIDI program (0 = piano).", rich_help_panel=panels.OUTPUT)
    ] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace files of the same name in --out (default: write under a new "
            "numbered name and say so).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    render: Annotated[
        bool,
        typer.Option(
            "--render", help="Write a WAV beside each MIDI file.", rich_help_panel=panels.OUTPUT
        ),
    ] = False,
    soundfont: Annotated[
        Path | None,
        typer.Option(
            help="SoundFont for --render and --synth (default: system GM font).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Print the pieces' figures beside the model's training data, and how "
            "much they copy from it (docs/stats.md).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document on stdout: every file written, with its figures "
            "(nothing else goes to stdout).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print nothing but errors.", rich_help_panel=panels.OUTPUT
        ),
    ] = False,
    play: Annotated[
        bool,
        typer.Option(
            "--play",
            help="Play the first piece live while it is sampled.",
            rich_help_panel=panels.PLAYBACK,
        ),
    ] = False,
    port: Annotated[
        str | None,
        typer.Option(help="MIDI output port for --play.", rich_help_panel=panels.PLAYBACK),
    ] = None,
    virtual: Annotated[
        str | None,
        typer.Option(
            help="Open a virtual MIDI port of this name for --play.",
            rich_help_panel=panels.PLAYBACK,
        ),
    ] = None,
    api: Annotated[
        ApiChoice, typer.Option(help="MIDI API for --play.", rich_help_panel=panels.PLAYBACK)
    ] = ApiChoice.auto,
    synth: SynthOption = False,
    audio_driver: AudioDriverOption = None,
    audio_file: AudioFileOption = None,
    device: DeviceOption = DEFAULT_DEVICE,
) -> None:
    """Sample new pieces from a model and write them as MIDI files (with provenance)."""
    from tuneforge.generate import Request, load_generator, read_primer
    from tuneforge.generate import generate as run_generation
    from tuneforge.sample import SamplingOptions, parse_pitch_range
    from tuneforge.validate import check_numbers

    # Every number is checked before the model is loaded.
    check_numbers(
        {
            "temperature": temp,
            "length_beats": length,
            "num_steps": steps,
            "num_pieces": num,
            "seed": seed,
            "primer_beats": primer_beats,
            "max_polyphony": max_polyphony,
            "max_silence_beats": max_silence_beats,
            "tempo_bpm": tempo,
            "program": program,
        }
    )
    if json_output and quiet:
        raise ConfigError("give --json or --quiet, not both")
    if length is not None and steps is not None:
        raise ConfigError("give either --length (beats) or --steps, not both")
    if primer_beats is not None and primer is None:
        raise ConfigError("--primer-beats needs --primer FILE.mid")
    if melody is not None and (length is not None or steps is not None):
        raise ConfigError("the melody sets the length; drop --length and --steps")
    meter = None
    if time_signature is not None:
        from tuneforge.music.meter import parse_time_signature

        try:
            meter = parse_time_signature(time_signature)
        except ValueError as error:
            raise ConfigError(f"--time-signature: {error}") from None
    # With --json or --quiet, stdout carries the document or nothing: notes go to stderr.
    say = err_console if json_output or quiet else console
    default_range = (SamplingOptions.lowest_pitch, SamplingOptions.highest_pitch)
    low, high = parse_pitch_range(pitch_range) if pitch_range else default_range
    generator = load_generator(model, device=device.value)
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
        overwrite=overwrite,
        time_signature=meter,
    )
    request.check()  # a length in beats is checked in steps too
    consume = None
    if play:
        from tuneforge.playback.outputs import OutputRequest

        where = OutputRequest(port, virtual, api.value, synth, audio_driver, audio_file, soundfont)
        consume = _live_player(where, spb, tempo, program, generator, say)
    try:
        pieces = run_generation(generator, request, out, consume=consume)
    except KeyboardInterrupt:
        say.print("[yellow]stopped[/yellow]; all notes off")
        raise typer.Exit(130) from None
    for piece in pieces:
        if piece.taken_path is not None:
            say.print(
                f"{escape(piece.taken_path.name)} exists; wrote {escape(piece.midi_path.name)} "
                "instead (--overwrite replaces)",
                soft_wrap=True,
            )
    wavs = _render_all(pieces, soundfont) if render else [None] * len(pieces)
    stats_line = None
    if stats:
        from tuneforge.cli.generation_stats import generation_stats_line

        stats_line = generation_stats_line(pieces, generator)
    if json_output:
        document = _json_document(generator, request, pieces, wavs, stats_line)
        typer.echo(json.dumps(document, indent=2))
        return
    if quiet:
        return
    table = Table(title=f"model {escape(generator.name)}, seed {request.seed}, temperature {temp}")
    table.add_column("MIDI file", overflow="fold")
    for column in ("steps", "seconds", "notes per step"):
        table.add_column(column, justify="right")
    for piece in pieces:
        figures = piece_figures(piece)
        table.add_row(
            escape(str(piece.midi_path)),
            str(figures["steps"]),
            f"{figures['seconds']:.1f}",
            f"{figures['notes_per_step']:.2f}",
        )
    console.print(table)
    for wav in wavs:
        if wav is not None:
            console.print(f"wrote {escape(str(wav.path))} ({wav.duration_s:.1f} s)", soft_wrap=True)
    if stats_line is not None:
        console.print(escape(stats_line), soft_wrap=True)


def piece_figures(piece) -> dict:
    """A written piece's figures, as the table and the JSON document show them."""
    roll = piece.roll
    return {
        "steps": int(len(roll)),
        "seconds": round(float(piece.duration_s), 3),
        "notes": int(piece.onsets.sum()) if piece.onsets is not None else _note_count(roll),
        "notes_per_step": round(float(roll.sum(axis=1).mean()), 4) if len(roll) else 0.0,
        "silent_steps": int((roll.sum(axis=1) == 0).sum()),
    }


def _note_count(roll) -> int:
    """Notes in a roll without onsets: every start of a held run."""
    import numpy as np

    previous = np.vstack([np.zeros((1, roll.shape[1]), roll.dtype), roll[:-1]])
    return int(((roll > 0) & (previous == 0)).sum())


def _json_document(generator, request, pieces, wavs, stats_line) -> dict:
    """What `generate --json` prints: the run's settings and every file written."""
    entries = []
    for piece, wav in zip(pieces, wavs, strict=True):
        files = {"midi": str(piece.midi_path), "provenance": str(piece.sidecar_path)}
        entry = {"files": files, **piece_figures(piece)}
        if wav is not None:
            files["wav"] = str(wav.path)
            entry["wav"] = {
                "seconds": round(wav.duration_s, 3),
                "sample_rate_hz": wav.sample_rate_hz,
                "peak": round(wav.peak, 4),
                "rms": round(wav.rms, 4),
            }
        entries.append(entry)
    return {
        "model": generator.name,
        "model_sha256": generator.model_sha256,
        "seed": request.seed,
        "temperature": request.options.temperature,
        "steps_per_beat": generator.steps_per_beat,
        "tempo_bpm": request.tempo_bpm,
        "pieces": entries,
        "stats": stats_line,
    }


def _live_player(where, steps_per_beat, tempo_bpm, program, generator, say: Console):
    """A consumer for :func:`tuneforge.generate.generate` that plays frames as they arrive;
    its notes go to ``say``."""
    from tuneforge.music.events import frames_to_events
    from tuneforge.playback.live import play_events
    from tuneforge.playback.outputs import open_player_output

    opened = open_player_output(where)
    output = opened.output
    if opened.note:
        say.print(f"[yellow]{escape(opened.note)}[/yellow]")
    lowest_pitch = int(generator.config.get("lowest_pitch", 21))

    def consume(frames) -> None:
        say.print(f"playing on {output.api}: {escape(output.port_name)} (Ctrl-C stops)")
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


def _render_all(pieces, soundfont: Path | None) -> list:
    """Render each generated MIDI file to a WAV beside it; the render reports."""
    from tuneforge.cli.render_cmd import render_file
    from tuneforge.playback.soundfont import find_soundfont

    soundfont_path = find_soundfont(soundfont)
    return [
        render_file(piece.midi_path, piece.midi_path.with_suffix(".wav"), soundfont_path)
        for piece in pieces
    ]


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
        console.print(f"no models shipped in {escape(str(pretrained_root()))}")
        return
    table = Table(
        title=f"shipped models ({escape(str(pretrained_root()))})",
        caption="* used when --model is not given",
    )
    for column in ("name", "cell", "parameters", "data", "valid NLL", "test NLL", "size"):
        table.add_column(column, overflow="fold")
    for model in shipped:
        card = model.card
        summary = model.summary()
        name = model.name + (" *" if model.name == DEFAULT_MODEL else "")
        table.add_row(
            escape(name),
            escape(str(summary["cell"] or "?")),
            f"{card['parameters']:,}" if isinstance(card.get("parameters"), int) else "?",
            escape(str(card.get("data", "?"))),
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
    app.command(cls=panels.Command)(generate)
    app.command(cls=panels.Command)(models)
