"""Build tiny MIDI files for tests from (pitch, start_step, end_step) tuples.

Usage::

    from tests.midi_factory import write_midi
    write_midi(tmp_path / "a.mid", [(60, 0, 4), (64, 4, 8)])

Times are in steps of ``1 / steps_per_beat`` quarter notes (default 4 steps per quarter), so a
file written here reads back with ``read_midi(path, steps_per_beat=4)`` onto the same steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import mido

NoteTuple = tuple[int, int, int]  # (pitch, start_step, end_step)


def _track(
    notes: Iterable[Sequence[int]],
    *,
    ticks_per_step: int,
    channel: int,
    velocity: int,
    zero_velocity_off: bool,
    meta: Iterable[tuple[int, mido.MetaMessage]] = (),
    release: bool = True,
) -> mido.MidiTrack:
    """One track; notes are (pitch, start, end) or (pitch, start, end, channel)."""
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    for order, (step, message) in enumerate(meta):
        events.append((step * ticks_per_step, -1_000_000 + order, message))
    for note in notes:
        pitch, start, end = note[0], note[1], note[2]
        note_channel = note[3] if len(note) > 3 else channel
        on = mido.Message("note_on", note=pitch, velocity=velocity, channel=note_channel)
        events.append((start * ticks_per_step, 1, on))
        if release:
            if zero_velocity_off:
                off = mido.Message("note_on", note=pitch, velocity=0, channel=note_channel)
            else:
                off = mido.Message("note_off", note=pitch, velocity=64, channel=note_channel)
            events.append((end * ticks_per_step, 0, off))
    events.sort(key=lambda event: (event[0], event[1]))
    track = mido.MidiTrack()
    last_tick = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - last_tick))
        last_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def write_midi(
    path: str | Path,
    notes: Iterable[Sequence[int]] = (),
    *,
    extra_tracks: Sequence[Iterable[Sequence[int]]] = (),
    steps_per_beat: int = 4,
    ticks_per_beat: int = 480,
    midi_format: int = 1,
    channel: int = 0,
    velocity: int = 80,
    tempo_changes: Iterable[tuple[int, float]] = ((0, 120.0),),
    time_signatures: Iterable[tuple[int, int, int]] = (),
    zero_velocity_off: bool = False,
    release: bool = True,
) -> Path:
    """Write a Standard MIDI File and return its path.

    Args:
        notes: the first track's notes, (pitch, start_step, end_step[, channel]).
        extra_tracks: more tracks of notes (format 1: played together; format 2: in sequence).
        tempo_changes: (step, bpm) set_tempo events in the first track.
        time_signatures: (step, numerator, denominator) events in the first track.
        zero_velocity_off: end notes with note-on velocity 0 instead of note-off.
        release: False leaves every note of the file without its note-off.
    """
    ticks_per_step = ticks_per_beat // steps_per_beat
    meta = [
        (step, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
        for step, bpm in tempo_changes
    ]
    meta += [
        (step, mido.MetaMessage("time_signature", numerator=num, denominator=den))
        for step, num, den in time_signatures
    ]
    options = dict(
        ticks_per_step=ticks_per_step,
        channel=channel,
        velocity=velocity,
        zero_velocity_off=zero_velocity_off,
        release=release,
    )
    midi = mido.MidiFile(type=midi_format, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(_track(notes, meta=meta, **options))
    for track_notes in extra_tracks:
        midi.tracks.append(_track(track_notes, **options))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)
    return path


def _raw_track_file(events: bytes, ticks_per_beat: int = 480) -> bytes:
    """A format 0 file around raw track event bytes (for timings mido refuses to write)."""
    header = (
        b"MThd" + (6).to_bytes(4, "big") + bytes([0, 0, 0, 1]) + ticks_per_beat.to_bytes(2, "big")
    )
    return header + b"MTrk" + len(events).to_bytes(4, "big") + events


def write_mixed_folder(
    root: str | Path, real_files: Sequence[Path] = ()
) -> dict[str, tuple[str, str]]:
    """Fill ``root`` with good, odd and broken files; return {relative path: (outcome, reason)}.

    ``real_files`` (e.g. from ../shared/data/nottingham-midi) are copied in as used files.
    """
    root = Path(root)
    expected: dict[str, tuple[str, str]] = {}
    used = ("used", "")

    def add(name: str, outcome: tuple[str, str], data: bytes | None = None, **midi) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            write_midi(path, midi.pop("notes"), **midi)
        else:
            path.write_bytes(data)
        expected[name] = outcome

    for index, real in enumerate(real_files):
        add(f"real/{index}_{real.name}", used, real.read_bytes())
    add("good.mid", used, notes=[(60, 0, 8), (64, 4, 12), (67, 8, 16)])
    add("nested/deeper/upper.MID", used, notes=[(48, 0, 4), (55, 0, 4)])
    add("nested/mixed.Midi", used, notes=[(72, 0, 2), (74, 2, 4)])
    add("karaoke.KAR", used, notes=[(62, 0, 6)])
    add("vel0.mid", used, notes=[(60, 0, 2), (60, 2, 4)], zero_velocity_off=True)
    # Note 60 is never released; note 64 ends after 4 beats (a delta of 1920 ticks).
    hanging = b"\x00\x90\x3c\x50\x00\x90\x40\x50\x8f\x00\x80\x40\x40\x00\xff\x2f\x00"
    add("hanging.mid", used, _raw_track_file(hanging))
    add("range.mid", used, notes=[(60, 0, 4), (10, 0, 4), (127, 2, 4)])
    add("format2.mid", used, notes=[(60, 0, 4)], extra_tracks=[[(62, 0, 4)]], midi_format=2)
    good = (root / "good.mid").read_bytes()
    add("zero_bytes.mid", ("failed", "not MIDI"), b"")
    add("random.mid", ("failed", "not MIDI"), bytes(range(7, 250, 3)) * 5)
    add("text.mid", ("failed", "not MIDI"), b"Dear user,\nthis is not a MIDI file.\n")
    add("truncated.mid", ("failed", "truncated"), good[: len(good) // 2])
    add("header_only.mid", ("failed", "truncated"), good[:14])
    add("zero_division.mid", ("failed", "zero division"), good[:12] + b"\x00\x00" + good[14:])
    add("smpte.mid", ("failed", "SMPTE division"), good[:12] + b"\xe7\x28" + good[14:])
    # A data byte above 127 in a note-on: corrupt.
    add("corrupt.mid", ("failed", "corrupt"), _raw_track_file(b"\x00\x90\x3c\xc8\x00\xff\x2f\x00"))
    add("drums.mid", ("skipped", "percussion only"), notes=[(36, 0, 1, 9), (42, 1, 2, 9)])
    add("silent.mid", ("skipped", "empty"), notes=[])
    add("all_out_of_range.mid", ("skipped", "out of range"), notes=[(5, 0, 4), (120, 0, 4)])
    add("short.mid", ("skipped", "too short"), notes=[(60, 0, 1)])
    # One note held for a delta of 0x0FFFFFFF ticks (the largest a delta can be).
    huge = b"\x00\x90\x3c\x50" + b"\xff\xff\xff\x7f" + b"\x80\x3c\x40" + b"\x00\xff\x2f\x00"
    add("huge_delta.mid", ("skipped", "too long"), _raw_track_file(huge))
    add("notes.txt", ("ignored", "not a MIDI file name"), b"liner notes")
    add("nested/cover.jpg", ("ignored", "not a MIDI file name"), b"\xff\xd8\xff")
    return expected
