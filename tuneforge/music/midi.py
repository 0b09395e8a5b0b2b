"""MIDI file <-> piano roll; the one module that parses and writes Standard MIDI Files (mido).

Time is quantized relative to the beat: a step is ``1 / steps_per_beat`` of a quarter note, so
tempo changes move no notes; they are kept as metadata, as are time signatures. Every reason a
file cannot be used is raised as :class:`MidiRejected` (a :class:`~tuneforge.errors.MidiError`)
that says whether the file was *skipped* (valid MIDI, nothing usable) or *failed* (unreadable).
"""

from __future__ import annotations

import io
import os
import stat
import struct
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.errors import ConfigError, MidiError
from tuneforge.music.pianoroll import (
    HIGHEST_PITCH,
    LOWEST_PITCH,
    Note,
    notes_to_roll,
    roll_to_notes,
)

PERCUSSION_CHANNEL = 9  # channel 10 in the 1-based numbering of the MIDI spec
DEFAULT_TEMPO_BPM = 120.0  # what the MIDI spec assumes before the first tempo event
MIN_STEPS = 2  # next-step prediction needs at least one input and one target frame
TICKS_PER_STEP_WRITTEN = 120  # written files use steps_per_beat * 120 ticks per quarter note
# Larger files are refused unread: mido holds every message as a Python object, so a file of
# dense 3-byte events costs ~160 MB of memory and ~4 s per MiB to read (2.9 MiB: 460 MB,
# 12 s). Real pieces are far smaller: Nottingham's largest is 34 KiB, piano-midi.de's ~200 KiB.
MAX_MIDI_BYTES = 4 * 1024 * 1024

# Outcomes of reading a file, as the folder report counts them.
SKIPPED = "skipped"
FAILED = "failed"


class MidiRejected(MidiError):
    """A MIDI file that cannot be used, with the outcome and a short reason for reports.

    ``outcome`` is ``"skipped"`` (valid MIDI with nothing usable: empty, percussion only, out of
    range, too short, too long) or ``"failed"`` (not MIDI, truncated, corrupt, unsupported).
    """

    def __init__(self, message: str, *, outcome: str, reason: str, detail: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome
        self.reason = reason
        self.detail = detail or message  # the message without the file name, for reports

    def naming(self, path: str | Path) -> MidiRejected:
        """The same rejection with a message that starts with the file it is about."""
        return MidiRejected(
            f"{path}: {self.detail}", outcome=self.outcome, reason=self.reason, detail=self.detail
        )


@dataclass(frozen=True)
class Piece:
    """One MIDI file as a piano roll plus the metadata the roll does not carry."""

    name: str
    roll: np.ndarray  # (T, 88) uint8, 1 where a pitch sounds
    onsets: np.ndarray  # (T, 88) uint8, 1 where a note starts
    steps_per_beat: int
    tempo_changes: tuple[tuple[int, float], ...]  # (step, bpm), sorted by step
    time_signatures: tuple[tuple[int, int, int], ...]  # (step, numerator, denominator)
    num_notes: int  # notes drawn into the roll
    dropped_out_of_range: int  # notes outside 21..108 left out
    folded_notes: int  # notes moved by octaves into 21..108 (fold_octaves=True)
    dropped_percussion: int  # notes on channel 10 left out (keep_percussion=False)
    midi_format: int  # 0, 1 or 2
    ticks_per_beat: int

    @property
    def length_steps(self) -> int:
        """Number of frames of the roll."""
        return int(self.roll.shape[0])

    @property
    def duration_s(self) -> float:
        """Length in seconds under the file's tempo map (120 bpm before the first change)."""
        return duration_s(self.length_steps, self.steps_per_beat, self.tempo_changes)


def duration_s(
    length_steps: int, steps_per_beat: int, tempo_changes: tuple[tuple[int, float], ...] = ()
) -> float:
    """Seconds that ``length_steps`` steps last under ``tempo_changes`` [(step, bpm)]."""
    total_s = 0.0
    step, bpm = 0, DEFAULT_TEMPO_BPM
    for change_step, change_bpm in sorted(tempo_changes):
        if change_step >= length_steps:
            break
        total_s += (change_step - step) * 60.0 / (bpm * steps_per_beat)
        step, bpm = max(step, change_step), change_bpm
    return total_s + (length_steps - step) * 60.0 / (bpm * steps_per_beat)


def _unwrap_riff(data: bytes) -> bytes:
    """The Standard MIDI File inside a RIFF RMID wrapper (as some Windows tools save .mid),
    or ``data`` unchanged."""
    if data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    position = 12
    while position + 8 <= len(data):
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if data[position : position + 4] == b"data":
            return data[position + 8 : position + 8 + size]
        position += 8 + size + (size & 1)  # RIFF chunks are padded to even sizes
    return data


def _check_header(data: bytes) -> int:
    """Reject what mido would misread or read unhelpfully; return the ticks per quarter note."""
    if not data:
        raise MidiRejected("the file is empty (0 bytes)", outcome=FAILED, reason="not MIDI")
    if data[:4] != b"MThd":
        raise MidiRejected(
            "no MIDI header (MThd): not a Standard MIDI File", outcome=FAILED, reason="not MIDI"
        )
    if len(data) < 14:
        raise MidiRejected("the MIDI header is cut short", outcome=FAILED, reason="truncated")
    (division,) = struct.unpack(">H", data[12:14])
    if division == 0:
        raise MidiRejected(
            "the time division is 0 ticks per quarter note, so no note has a time",
            outcome=FAILED,
            reason="zero division",
        )
    if division & 0x8000:
        raise MidiRejected(
            "SMPTE time division (absolute frames, no beat) is not supported; "
            "save the file with ticks per quarter note",
            outcome=FAILED,
            reason="SMPTE division",
        )
    return division


def _parse(data: bytes):
    """Parse bytes with mido, turning its many exception types into one MidiRejected."""
    import mido  # the only parser of MIDI files in tuneforge

    try:
        return mido.MidiFile(file=io.BytesIO(data))
    except EOFError as error:
        raise MidiRejected(
            "the file ends in the middle of a chunk",
            outcome=FAILED,
            reason="truncated",
        ) from error
    except RecursionError:
        raise  # not a property of the file
    except Exception as error:  # noqa: BLE001  mido raises many types (KeySignatureError...)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise MidiRejected(
            f"corrupt MIDI data: {message or type(error).__name__}",
            outcome=FAILED,
            reason="corrupt",
        ) from error


def read_file_bytes(path: str | Path, *, max_bytes: int = MAX_MIDI_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, refused unread when it is something else.

    A FIFO, a device (or a link to one, such as /dev/zero) or a folder is never opened for
    reading, so it cannot hang or fill memory; nor is a file above ``max_bytes``. The file is
    opened without blocking and checked again once open, in case it was swapped meanwhile.

    Raises:
        MidiRejected: "failed" with reason "not a regular file" or "unreadable", or "skipped"
            with reason "too large"; the message does not name the file (see naming()).
    """
    try:
        info = os.stat(path)
    except OSError as error:
        raise MidiRejected(
            f"cannot read the file: {error.strerror}", outcome=FAILED, reason="unreadable"
        ) from error
    _check_regular(info, max_bytes)
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise MidiRejected(
            f"cannot read the file: {error.strerror}", outcome=FAILED, reason="unreadable"
        ) from error
    with os.fdopen(handle, "rb") as file:
        _check_regular(os.fstat(file.fileno()), max_bytes)
        try:
            data = file.read(max_bytes + 1)
        except OSError as error:
            raise MidiRejected(
                f"cannot read the file: {error.strerror}", outcome=FAILED, reason="unreadable"
            ) from error
    if len(data) > max_bytes:  # it grew since it was measured
        raise _too_large(len(data), max_bytes)
    return data


def _check_regular(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise MidiRejected(
            f"{kind}, not a regular file; only regular files are read",
            outcome=FAILED,
            reason="not a regular file",
        )
    if info.st_size > max_bytes:
        raise _too_large(info.st_size, max_bytes)


def _too_large(size_bytes: int, max_bytes: int) -> MidiRejected:
    return MidiRejected(
        f"{size_bytes:,} bytes, more than the {max_bytes:,} bytes a MIDI file may have",
        outcome=SKIPPED,
        reason="too large",
    )


_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def open_midi(path: str | Path, *, max_bytes: int = MAX_MIDI_BYTES):
    """The file at ``path`` parsed by mido (a ``mido.MidiFile``), for readers of messages
    (playback, rendering) rather than rolls.

    Raises:
        MidiRejected: (a MidiError) with a one-line message that names the file.
    """
    try:
        data = _unwrap_riff(read_file_bytes(path, max_bytes=max_bytes))
        _check_header(data)
        return _parse(data)
    except MidiRejected as error:
        named = error.naming(path)
        if error.reason in ("truncated", "corrupt"):
            named.args = (f"{named}; is it a Standard MIDI File?",)
        raise named from None


def _collect_events(midi, keep_percussion: bool):
    """All notes as (pitch, start_tick, end_tick, velocity), the tempo and meter events, the
    number of percussion notes left out and the tick where the last track ends. Format 2
    tracks play one after another."""
    notes: list[tuple[int, int, int, int]] = []
    tempos: list[tuple[int, float]] = []
    meters: list[tuple[int, int, int]] = []
    dropped_percussion = 0
    track_offset = end_tick = 0
    for track in midi.tracks:
        tick = track_offset if midi.type == 2 else 0
        # Open notes per (channel, pitch), oldest first: a note-off closes the oldest one, so
        # overlapping notes of one pitch each keep their own start.
        open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
        for message in track:
            tick += message.time
            kind = message.type
            if kind == "note_on" or kind == "note_off":
                if message.channel == PERCUSSION_CHANNEL and not keep_percussion:
                    if kind == "note_on" and message.velocity > 0:
                        dropped_percussion += 1
                    continue
                key = (message.channel, message.note)
                if kind == "note_on" and message.velocity > 0:
                    open_notes[key].append((tick, message.velocity))
                elif open_notes[key]:  # note-on with velocity 0 is a note-off
                    start_tick, velocity = open_notes[key].popleft()
                    notes.append((message.note, start_tick, tick, velocity))
            elif kind == "set_tempo" and message.tempo > 0:  # a tempo of 0 is meaningless
                tempos.append((tick, 60_000_000.0 / message.tempo))
            elif kind == "time_signature":
                meters.append((tick, message.numerator, message.denominator))
        # Notes never released end with their track.
        for (_, pitch), pending in open_notes.items():
            notes.extend((pitch, start_tick, tick, velocity) for start_tick, velocity in pending)
        track_offset = tick
        end_tick = max(end_tick, tick)
    return notes, tempos, meters, dropped_percussion, end_tick


def read_midi_bytes(
    data: bytes,
    *,
    name: str = "",
    steps_per_beat: int = 4,
    keep_percussion: bool = False,
    fold_octaves: bool = False,
    max_steps: int = 100_000,
) -> Piece:
    """Read a Standard MIDI File held in ``data``; see :func:`read_midi`."""
    if steps_per_beat < 1:
        raise ConfigError(f"steps_per_beat must be >= 1, got {steps_per_beat}")
    if max_steps < MIN_STEPS:
        raise ConfigError(f"max_steps must be >= {MIN_STEPS}, got {max_steps}")
    data = _unwrap_riff(data)
    ticks_per_beat = _check_header(data)
    midi = _parse(data)
    events, tempos, meters, dropped_percussion, last_tick = _collect_events(midi, keep_percussion)

    def to_step(tick: int) -> int:
        # Round half up in integers: exact for any tick count, unlike float division.
        return (2 * tick * steps_per_beat + ticks_per_beat) // (2 * ticks_per_beat)

    notes: list[Note] = []
    dropped_out_of_range = folded_notes = 0
    for pitch, start_tick, end_tick, velocity in events:
        if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
            if not fold_octaves:
                dropped_out_of_range += 1
                continue
            folded_notes += 1
            while pitch < LOWEST_PITCH:
                pitch += 12
            while pitch > HIGHEST_PITCH:
                pitch -= 12
        start_step = to_step(start_tick)
        # A note shorter than half a step still sounds for one step.
        end_step = max(to_step(end_tick), start_step + 1)
        notes.append(Note(pitch, start_step, end_step, velocity))

    if not notes:
        if dropped_percussion:
            raise MidiRejected(
                f"only percussion (channel 10, {dropped_percussion} notes); "
                "use --keep-percussion (keep_percussion=True) to read it",
                outcome=SKIPPED,
                reason="percussion only",
            )
        if dropped_out_of_range:
            raise MidiRejected(
                f"all {dropped_out_of_range} notes lie outside the piano range 21..108; "
                "use --fold-octaves (fold_octaves=True) to fold them in",
                outcome=SKIPPED,
                reason="out of range",
            )
        raise MidiRejected("no notes", outcome=SKIPPED, reason="empty")
    # Checked before any memory is allocated: notes spanning more than max_steps are rejected.
    length_steps = max(note.end_step for note in notes)
    if length_steps > max_steps:
        raise MidiRejected(
            f"the notes span {length_steps:,} steps, more than max_steps={max_steps:,}",
            outcome=SKIPPED,
            reason="too long",
        )
    # Silence after the last note lasts until the end of the track (so a roll written by
    # roll_to_midi reads back with its length), unless that end lies absurdly far away.
    track_end_step = to_step(last_tick)
    if track_end_step <= max_steps:
        length_steps = max(length_steps, track_end_step)
    if length_steps < MIN_STEPS:
        raise MidiRejected(
            f"only {length_steps} step long; at least {MIN_STEPS} are needed",
            outcome=SKIPPED,
            reason="too short",
        )
    roll, onsets = notes_to_roll(notes, length_steps)
    # Several events at one step: the last one wins, as it would when played.
    tempo_by_step = {to_step(tick): bpm for tick, bpm in sorted(tempos, key=lambda e: e[0])}
    meter_by_step = {to_step(tick): (n, d) for tick, n, d in sorted(meters, key=lambda e: e[0])}
    return Piece(
        name=name,
        roll=roll,
        onsets=onsets,
        steps_per_beat=steps_per_beat,
        tempo_changes=tuple(sorted(tempo_by_step.items())),
        time_signatures=tuple((step, n, d) for step, (n, d) in sorted(meter_by_step.items())),
        num_notes=len(notes),
        dropped_out_of_range=dropped_out_of_range,
        folded_notes=folded_notes,
        dropped_percussion=dropped_percussion,
        midi_format=int(midi.type),
        ticks_per_beat=ticks_per_beat,
    )


def read_midi(
    path: str | Path,
    *,
    steps_per_beat: int = 4,
    keep_percussion: bool = False,
    fold_octaves: bool = False,
    max_steps: int = 100_000,
) -> Piece:
    """Read a MIDI file (format 0, 1 or 2; all tracks merged) into a :class:`Piece`.

    Args:
        steps_per_beat: steps per quarter note (JSB chorales use 1).
        keep_percussion: keep notes of channel 10 (left out by default).
        fold_octaves: move notes outside 21..108 by octaves into range instead of dropping them.
        max_steps: files whose notes span more steps are rejected before any roll is allocated.

    Raises:
        MidiRejected: (a MidiError) with the outcome, a short reason and a one-line message
            that names the file; FIFOs, devices and files above 16 MiB are refused unread.
    """
    path = Path(path)
    try:
        return read_midi_bytes(
            read_file_bytes(path),
            name=path.stem,
            steps_per_beat=steps_per_beat,
            keep_percussion=keep_percussion,
            fold_octaves=fold_octaves,
            max_steps=max_steps,
        )
    except MidiRejected as error:
        raise error.naming(path) from None


def midi_to_roll(path: str | Path, **options) -> tuple[np.ndarray, np.ndarray]:
    """``(roll, onsets)`` of a MIDI file; ``options`` as for :func:`read_midi`."""
    piece = read_midi(path, **options)
    return piece.roll, piece.onsets


def roll_to_midi(
    roll: np.ndarray,
    path: str | Path,
    *,
    onsets: np.ndarray | None = None,
    steps_per_beat: int = 4,
    tempo_bpm: float = 120.0,
    velocity: int = 80,
    program: int = 0,
    text_meta: str | None = None,
    time_signature: tuple[int, int] | None = None,
) -> Path:
    """Write a roll as a format 0 Standard MIDI File and return its path.

    Consecutive sounding frames merge into one note and a new note begins at each onset (see
    :func:`~tuneforge.music.pianoroll.roll_to_notes`). The output is deterministic: the same
    arguments give byte-identical files. ``text_meta`` goes into a text meta event at time 0,
    ``time_signature`` ``(numerator, denominator)`` into a time signature event (none: readers
    take the piece for 4/4).
    """
    import mido

    if steps_per_beat < 1 or steps_per_beat * TICKS_PER_STEP_WRITTEN > 0x7FFF:
        raise ConfigError(f"steps_per_beat must be in 1..273, got {steps_per_beat}")
    if not tempo_bpm > 0:
        raise ConfigError(f"tempo_bpm must be > 0, got {tempo_bpm}")
    if not 1 <= velocity <= 127:
        raise ConfigError(f"velocity must be in 1..127, got {velocity}")
    if not 0 <= program <= 127:
        raise ConfigError(f"program must be in 0..127, got {program}")
    if time_signature is not None:
        from tuneforge.music.meter import format_time_signature, parse_time_signature

        try:
            parse_time_signature(format_time_signature(time_signature))
        except ValueError as error:
            raise ConfigError(str(error)) from None
    notes = roll_to_notes(roll, onsets, velocity=velocity)

    # (tick, order, pitch, is_on): at one tick note-offs come first, so a repeated note's end
    # and the next start stay two notes when the file is read again.
    events = [(n.start_step * TICKS_PER_STEP_WRITTEN, 1, n.pitch, True) for n in notes]
    events += [(n.end_step * TICKS_PER_STEP_WRITTEN, 0, n.pitch, False) for n in notes]
    events.sort()

    track = mido.MidiTrack()
    if text_meta is not None:
        # Text meta events are Latin-1 in mido; other characters become "?" rather than fail.
        safe_text = text_meta.encode("latin-1", "replace").decode("latin-1")
        track.append(mido.MetaMessage("text", text=safe_text, time=0))
    if time_signature is not None:
        numerator, denominator = (int(v) for v in time_signature)
        track.append(
            mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator, time=0)
        )
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    last_tick = 0
    for tick, _, pitch, is_on in events:
        kind = "note_on" if is_on else "note_off"
        track.append(
            mido.Message(kind, note=pitch, velocity=velocity if is_on else 0, time=tick - last_tick)
        )
        last_tick = tick
    # The track ends with the roll, so trailing silent frames survive a round trip.
    end_tick = int(np.shape(roll)[0]) * TICKS_PER_STEP_WRITTEN
    track.append(mido.MetaMessage("end_of_track", time=max(end_tick - last_tick, 0)))

    midi = mido.MidiFile(type=0, ticks_per_beat=steps_per_beat * TICKS_PER_STEP_WRITTEN)
    midi.tracks.append(track)
    path = Path(path)
    midi.save(path)
    return path
