"""MIDI file -> time-stamped channel messages for live playback and offline rendering.

Times come from the file's tempo map (every ``set_tempo`` of every track, as Standard MIDI
Files type 0 and 1 define it), so a piece that speeds up plays faster. Frames sampled one at a
time can be turned into the same kind of messages with :func:`frames_to_events`, which is how
``generate --play`` starts sounding before the piece is finished.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from tuneforge.errors import MidiError

DEFAULT_TEMPO_US_PER_BEAT = 500_000  # 120 bpm, the Standard MIDI File default

# Messages a synthesizer acts on; meta events and system messages are left out.
_CHANNEL_TYPES = frozenset(
    {
        "note_on",
        "note_off",
        "control_change",
        "program_change",
        "pitchwheel",
        "aftertouch",
        "polytouch",
    }
)


@dataclass(frozen=True)
class TimedMessage:
    """A channel message and when it should sound, in seconds from the start of the piece."""

    time_s: float
    message: mido.Message


@dataclass(frozen=True)
class EventList:
    """All channel messages of a file in time order, and where the piece ends."""

    events: list[TimedMessage]
    duration_s: float  # time of the last event or end-of-track, whichever is later


def _merged_ticks(midi_file: mido.MidiFile) -> Iterator[tuple[int, mido.Message]]:
    """Yield ``(absolute_tick, message)`` of all tracks, by tick; ties keep track order."""

    def absolute(track_index: int, track: mido.MidiTrack):
        tick = 0
        for index, message in enumerate(track):
            tick += message.time
            yield tick, track_index, index, message

    # heapq.merge is stable across inputs and keeps each track's own order at equal ticks, so a
    # zero-length note (on then off at one tick) is never turned into a hanging note.
    merged = heapq.merge(*(absolute(i, t) for i, t in enumerate(midi_file.tracks)))
    for tick, _track, _index, message in merged:
        yield tick, message


def midi_file_to_events(midi_file: mido.MidiFile) -> EventList:
    """Time-stamp the channel messages of an open MIDI file through its tempo map."""
    if midi_file.type == 2:
        raise MidiError("type 2 MIDI files (independent sequences) are not supported; convert it")
    ticks_per_beat = midi_file.ticks_per_beat
    if ticks_per_beat <= 0:
        raise MidiError("this MIDI file uses SMPTE timing; save it with ticks per beat instead")
    tempo_us = DEFAULT_TEMPO_US_PER_BEAT
    last_tick = 0
    last_s = 0.0
    events: list[TimedMessage] = []
    for tick, message in _merged_ticks(midi_file):
        # Seconds accumulate per tempo segment, so a tempo change only affects what follows it.
        last_s += (tick - last_tick) * tempo_us / (ticks_per_beat * 1_000_000)
        last_tick = tick
        if message.type == "set_tempo":
            tempo_us = message.tempo
        elif message.type in _CHANNEL_TYPES:
            events.append(TimedMessage(last_s, message.copy(time=0)))
    return EventList(events=events, duration_s=last_s)


def read_events(path: str | Path) -> EventList:
    """Read a MIDI file and return its channel messages with times in seconds.

    The file is read by :func:`tuneforge.music.midi.open_midi`, so every way it can be unusable
    is one :class:`~tuneforge.errors.MidiError` that names it.
    """
    from tuneforge.music.midi import open_midi

    path = Path(path)
    if not path.exists():
        raise MidiError(f"no MIDI file at {path}; check the path")
    midi_file = open_midi(path)
    try:
        return midi_file_to_events(midi_file)
    except MidiError as error:
        raise MidiError(f"{path}: {error}") from None


def frames_to_events(
    frames: Iterable[np.ndarray],
    *,
    steps_per_beat: int,
    tempo_bpm: float,
    lowest_pitch: int = 21,
    velocity: int = 80,
    channel: int = 0,
    program: int | None = 0,
) -> Iterator[TimedMessage]:
    """Turn piano-roll frames, one ``(P,)`` 0/1 array at a time, into timed messages.

    A pitch that stays on across frames is one held note, as in the MIDI files the sampler
    writes. Messages for frame ``t`` are yielded as soon as frame ``t`` arrives, so a consumer
    can play while the frames are still being produced; the note-offs of the last frame follow
    when the iterator is exhausted.
    """
    if steps_per_beat <= 0 or tempo_bpm <= 0:
        raise ValueError("steps_per_beat and tempo_bpm must be positive")
    step_s = 60.0 / (tempo_bpm * steps_per_beat)
    if program is not None:
        yield TimedMessage(0.0, mido.Message("program_change", channel=channel, program=program))
    sounding: np.ndarray | None = None
    step = 0
    for step, frame in enumerate(frames):
        current = np.asarray(frame).astype(bool, copy=False)
        if sounding is None:
            sounding = np.zeros_like(current)
        time_s = step * step_s
        # Offs before ons at one instant, so a repeated pitch is released before it restarts.
        for k in np.flatnonzero(sounding & ~current):
            yield TimedMessage(
                time_s, mido.Message("note_off", channel=channel, note=lowest_pitch + int(k))
            )
        for k in np.flatnonzero(current & ~sounding):
            yield TimedMessage(
                time_s,
                mido.Message(
                    "note_on", channel=channel, note=lowest_pitch + int(k), velocity=velocity
                ),
            )
        sounding = current
    if sounding is not None:
        end_s = (step + 1) * step_s
        for k in np.flatnonzero(sounding):
            yield TimedMessage(
                end_s, mido.Message("note_off", channel=channel, note=lowest_pitch + int(k))
            )
