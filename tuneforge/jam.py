"""Jam with a model live: call and response, or accompaniment, on a clock that never drifts.

A :class:`JamSession` lives on a grid of steps (the model's steps per beat at the session
tempo). Step ``k`` falls at ``anchor_s + (k - anchor_step) * step_s`` on the monotonic clock,
re-anchored only when the tempo changes, so no error adds up. At each step boundary the
player's notes of the step (held, or begun since the last boundary) become one frame:

* call and response: once the player has been silent for ``pause_beats``, the frames of the
  call are the primer and the model answers for ``answer_bars``, then listens again. Frames
  are sampled one step at a time, so the answer starts at the boundary that ends the pause;
  leading silent frames are skipped so the answer starts with a note.
* accompaniment: each step the model writes the parts under the player's top note
  (the sampler's melody conditioning) having read the last ``context_steps`` of the session.

The session sends raw MIDI to any :class:`~tuneforge.playback.live.Output` and never prints;
:meth:`JamSession.save` writes what was played as one MIDI file with provenance, and a JSON
beside it with the schedule (for tests and the latency benchmark).
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge import __version__
from tuneforge.errors import ConfigError
from tuneforge.files import make_folder, replacing, write_text
from tuneforge.generate import PROVENANCE_PREFIX, Generator
from tuneforge.playback.live import Output, _SoundingNotes, panic

MODES = ("call", "accompany")
PLAYER_CHANNEL = 0
MODEL_CHANNEL = 1
DRUM_CHANNEL = 9
CLICK_NOTES = (76, 77)  # GM hi and low wood block: the downbeat, the other beats
MAX_LEAD_STEPS = 16  # silent frames skipped at most before an answer's first note
KEYBOARD_PIANO = "awsedftgyhujk"  # a computer keyboard row as one octave, C to C
KEYBOARD_BASE_NOTE = 60
CONTROL_KEYS = {
    "1": "temperature down",
    "2": "temperature up",
    "3": "density down",
    "4": "density up",
    "5": "transpose down",
    "6": "transpose up",
    "7": "tempo down",
    "8": "tempo up",
    "m": "metronome",
    "0": "save",
    "q": "quit",
}


@dataclass
class JamSettings:
    """How the session plays; every field but ``mode`` can change while it runs."""

    mode: str = "call"  # "call" (call and response) or "accompany"
    tempo_bpm: float = 100.0
    pause_beats: float = 1.0  # this much silence ends a call
    answer_bars: int = 2  # length of each answer
    beats_per_bar: int = 4
    temperature: float = 0.8
    max_polyphony: int | None = 4  # density: most notes the model plays at once
    transpose: int = 0  # semitones added to the model's notes
    metronome: bool = False
    seed: int = 0
    bars: int | None = None  # stop after this many bars (None: until stopped)
    thru: bool = True  # echo the player's notes to the output
    context_steps: int = 64  # at most this much of the past is read by the model
    velocity: int = 80
    program: int = 0  # General MIDI program of the model's channel

    def check(self) -> None:
        """Raise ConfigError for a value the session cannot use."""
        if self.mode not in MODES:
            raise ConfigError(f"unknown jam mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if not 20 <= self.tempo_bpm <= 400:
            raise ConfigError(f"tempo must be in 20..400 bpm, got {self.tempo_bpm}")
        if self.pause_beats <= 0 or self.answer_bars < 1 or self.beats_per_bar < 1:
            raise ConfigError("pause beats must be > 0, answer bars and beats per bar >= 1")
        if self.bars is not None and self.bars < 1:
            raise ConfigError(f"bars must be at least 1, got {self.bars}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


@dataclass
class Answer:
    """One call and the model's answer to it, in steps and seconds since the session began."""

    call_start_step: int
    call_end_step: int  # first step after the call's last sounding step
    answer_start_step: int
    call_end_s: float  # when the pause was complete: the answer is due now
    first_note_s: float | None = None  # when the first note of the answer was sent
    answer_steps: int = 0
    heard_end_s: float | None = None  # when the call's last note-off was taken in
    first_note_due_s: float | None = None  # the boundary the first note was planned for


@dataclass
class JamReport:
    """What a session did: its steps, answers and how late the step boundaries were sent."""

    steps: int
    answers: list[Answer] = field(default_factory=list)
    step_late_s: list[float] = field(default_factory=list)  # per boundary, sent - scheduled
    step_due_s: list[float] = field(default_factory=list)  # per boundary, since the start


def keyboard_note(char: str, octave_shift: int = 0) -> int | None:
    """The MIDI note a computer key plays (``a`` is C4), or None for other keys."""
    index = KEYBOARD_PIANO.find(char)
    if index < 0 or not char:
        return None
    return KEYBOARD_BASE_NOTE + 12 * octave_shift + index


def check_model(
    generator: Generator, mode: str, *, sample: Callable[..., Iterator[Any]] | None = None
) -> None:
    """Try the model once the way ``mode`` uses it, before the session starts: continue a
    phrase (call and response) or write parts under a melody (accompaniment).

    Raises:
        ConfigError: the model cannot; the message names the model and what to do.
    """
    from tuneforge.sample import SamplingOptions, sample_stream

    config = generator.config
    num_pitches = int(config.get("num_pitches", 88))
    lowest = int(config.get("lowest_pitch", 21))
    column = min(max(0, 60 - lowest), num_pitches - 1)  # middle C, or the nearest pitch
    primer = np.zeros((2, num_pitches), dtype=np.uint8)
    primer[:, column] = 1
    melody = primer[:1] if mode == "accompany" else None
    task = "accompany a melody" if mode == "accompany" else "continue a phrase"
    if any(not bool(p.isfinite().all()) for p in generator.model.parameters()):
        raise ConfigError(
            f"model {generator.name} cannot {task} in a jam (its weights hold NaN or infinity,"
            " as after a diverged training); choose another model with --model"
        )
    try:
        stream = (sample or sample_stream)(
            generator.model,
            num_steps=1,
            batch_size=1,
            options=SamplingOptions(),
            seed=0,
            primer=primer,
            melody=melody,
        )
        frame = np.asarray(next(iter(stream))[0], dtype=float)
        if frame.shape != (num_pitches,) or not np.isfinite(frame).all():
            raise ValueError(f"it drew a step of shape {frame.shape} with values {frame[:4]}")
    except Exception as error:  # any failure here would otherwise end the session mid-play
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"model {generator.name} cannot {task} in a jam ({reason}); "
            "choose another model with --model"
        ) from error


class JamSession:
    """A live session: feed it the player's messages, call :meth:`advance` often."""

    def __init__(
        self,
        generator: Generator,
        output: Output,
        settings: JamSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sample: Callable[..., Iterator[Any]] | None = None,
    ) -> None:
        """``sample`` replaces :func:`tuneforge.sample.sample_stream` (tests)."""
        from tuneforge.sample import sample_stream

        settings.check()
        self.generator = generator
        self.output = output
        self.settings = settings
        self.clock = clock
        self._sample = sample or sample_stream
        config = generator.config
        self.lowest_pitch = int(config.get("lowest_pitch", 21))
        self.num_pitches = int(config.get("num_pitches", 88))
        self.steps_per_beat = generator.steps_per_beat
        self.start_s = clock()
        self._anchor_s, self._anchor_step = self.start_s, 0
        self.step = 0  # the next boundary to process
        self.finished = False
        self.report = JamReport(steps=0)
        self.tempo_changes: list[tuple[int, float]] = [(0, settings.tempo_bpm)]
        self._queue: list[tuple[float, int, list[int]]] = []
        self._order = itertools.count()
        self._sounding = _SoundingNotes()
        self._held: set[int] = set()  # player's notes now down
        self._struck: set[int] = set()  # begun since the last boundary
        self._player: list[np.ndarray] = []  # (P,) bool per processed step
        self._model: list[np.ndarray] = []
        self._model_heard: list[np.ndarray] = []  # the model's frames as they sounded
        self._model_now: set[int] = set()  # pitches the model sounds now
        self._call_start: int | None = None
        self._last_active = -1
        self._released_s: float | None = None  # when the player's last note ended
        self._answer: Iterator[np.ndarray] | None = None
        self._answer_left = 0
        self.state = "listening" if settings.mode == "call" else "accompanying"
        self._send_now([0xC0 | MODEL_CHANNEL, settings.program])

    # -- the clock ---------------------------------------------------------------------
    @property
    def step_s(self) -> float:
        """Seconds per step at the current tempo."""
        return 60.0 / (self.settings.tempo_bpm * self.steps_per_beat)

    def step_time(self, step: int) -> float:
        """Monotonic time of boundary ``step``."""
        return self._anchor_s + (step - self._anchor_step) * self.step_s

    def set_tempo(self, tempo_bpm: float) -> None:
        """Change the tempo from the next boundary on, without moving the boundaries passed."""
        tempo_bpm = float(min(400.0, max(20.0, tempo_bpm)))
        self._anchor_s, self._anchor_step = self.step_time(self.step), self.step
        self.settings.tempo_bpm = tempo_bpm
        self.tempo_changes.append((self.step, tempo_bpm))

    # -- input -------------------------------------------------------------------------
    def player_message(self, data: list[int]) -> None:
        """A message from the player (an input port); note-ons and -offs shape the call."""
        if not data:
            return
        status = data[0] & 0xF0
        if status == 0x90 and len(data) > 2 and data[2] > 0:
            self._held.add(data[1])
            self._struck.add(data[1])
        elif status in (0x80, 0x90) and len(data) > 1:
            self._held.discard(data[1])
            if not self._held:
                self._released_s = self.clock() - self.start_s
        if self.settings.thru and status in (0x80, 0x90, 0xB0):
            self._send_now([status | PLAYER_CHANNEL, *data[1:]])

    def key_note(self, note: int, *, beats: float = 1.0) -> None:
        """A computer key struck as a piano key: the note sounds for ``beats``."""
        self.player_message([0x90, note, self.settings.velocity])
        off_s = self.clock() + beats * self.steps_per_beat * self.step_s
        self._queue_at(off_s, [0x80 | PLAYER_CHANNEL, note, 0])

    def control(self, action: str) -> str:
        """Apply one live control (see :data:`CONTROL_KEYS`); return what it set."""
        s = self.settings
        if action == "temperature down":
            s.temperature = round(max(0.1, s.temperature - 0.1), 2)
            return f"temperature {s.temperature}"
        if action == "temperature up":
            s.temperature = round(min(3.0, s.temperature + 0.1), 2)
            return f"temperature {s.temperature}"
        if action in ("density down", "density up"):
            levels = [1, 2, 3, 4, 5, 6, 8, None]
            index = levels.index(s.max_polyphony) if s.max_polyphony in levels else 3
            index = max(0, index - 1) if action == "density down" else min(7, index + 1)
            s.max_polyphony = levels[index]
            return f"density {s.max_polyphony or 'any'}"
        if action in ("transpose down", "transpose up"):
            s.transpose = max(-24, min(24, s.transpose + (1 if action.endswith("up") else -1)))
            return f"transpose {s.transpose:+d}"
        if action in ("tempo down", "tempo up"):
            self.set_tempo(s.tempo_bpm + (5 if action.endswith("up") else -5))
            return f"tempo {s.tempo_bpm:g} bpm"
        if action == "metronome":
            s.metronome = not s.metronome
            return f"metronome {'on' if s.metronome else 'off'}"
        raise ConfigError(f"unknown jam control {action!r}")

    # -- output ------------------------------------------------------------------------
    def _send_now(self, data: list[int]) -> None:
        self.output.send(data)
        self._sounding.track(data)

    def _queue_at(self, time_s: float, data: list[int]) -> None:
        heapq.heappush(self._queue, (time_s, next(self._order), data))

    def _flush(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            _, _, data = heapq.heappop(self._queue)
            if data[0] & 0xF0 == 0x80 and data[0] & 0x0F == PLAYER_CHANNEL:
                self._held.discard(data[1])  # a keyboard note ending on its own
                if not self._held:
                    self._released_s = now - self.start_s
            self._send_now(data)

    def _play_model_frame(self, frame: np.ndarray) -> bool:
        """Sound ``frame`` (transposed) after the model's last one; True if a note began.

        Notes are compared as the pitches that sound, so a transposition while a note is
        held ends that note where it sounds.
        """
        wanted = {self._pitch(k) for k in np.flatnonzero(frame)}
        for pitch in sorted(self._model_now - wanted):
            self._send_now([0x80 | MODEL_CHANNEL, pitch, 0])
        began = sorted(wanted - self._model_now)
        for pitch in began:
            self._send_now([0x90 | MODEL_CHANNEL, pitch, self.settings.velocity])
        self._model_now = wanted
        return bool(began)

    def _pitch(self, column: int) -> int:
        return int(min(127, max(0, self.lowest_pitch + int(column) + self.settings.transpose)))

    def _heard(self) -> np.ndarray:
        """The model's sounding pitches as a frame (transposed as they sound)."""
        frame = np.zeros(self.num_pitches, dtype=bool)
        for pitch in self._model_now:
            if 0 <= pitch - self.lowest_pitch < self.num_pitches:
                frame[pitch - self.lowest_pitch] = True
        return frame

    # -- the step loop -----------------------------------------------------------------
    def next_due_s(self) -> float:
        """The monotonic time of the next thing to do (a boundary or a queued message)."""
        due = self.step_time(self.step)
        return min(due, self._queue[0][0]) if self._queue else due

    def advance(self, now: float | None = None) -> None:
        """Process every boundary and queued message due by ``now``."""
        now = self.clock() if now is None else now
        self._flush(now)
        while not self.finished and self.step_time(self.step) <= now:
            scheduled = self.step_time(self.step)
            self._boundary(self.step, scheduled)
            self.report.step_late_s.append(self.clock() - scheduled)
            self.report.step_due_s.append(scheduled - self.start_s)
            self.step += 1
            self.report.steps = self.step
            if self.settings.bars is not None:
                total = self.settings.bars * self.settings.beats_per_bar * self.steps_per_beat
                self.finished = self.step >= total
            self._flush(self.clock())

    def _player_frame(self) -> np.ndarray:
        frame = np.zeros(self.num_pitches, dtype=bool)
        for note in self._held | self._struck:
            column = note - self.lowest_pitch
            if 0 <= column < self.num_pitches:
                frame[column] = True
        self._struck.clear()
        return frame

    def _boundary(self, step: int, time_s: float) -> None:
        s = self.settings
        player = self._player_frame()
        if s.metronome and step % self.steps_per_beat == 0:
            beat = step // self.steps_per_beat
            click = CLICK_NOTES[0] if beat % s.beats_per_bar == 0 else CLICK_NOTES[1]
            self._send_now([0x99, click, 100])
            self._queue_at(time_s + self.step_s, [0x89, click, 0])
        if s.mode == "accompany":
            model = self._accompany(step, player)
        else:
            model = self._call_and_response(step, player)
        self._player.append(player)
        self._model.append(model)
        self._model_heard.append(self._heard())

    def _options(self, max_silence_steps: int | None = None):
        from tuneforge.sample import SamplingOptions

        return SamplingOptions(
            temperature=self.settings.temperature,
            max_polyphony=self.settings.max_polyphony,
            max_silence_steps=max_silence_steps,
        )

    def _history(self, start: int, end: int) -> np.ndarray | None:
        """Frames ``start..end`` of the session, player and model together, as a primer."""
        start = max(start, end - self.settings.context_steps)
        if end <= start:
            return None
        rows = np.stack(self._player[start:end]) | np.stack(self._model[start:end])
        return rows.astype(np.uint8)  # (T, P)

    def _accompany(self, step: int, player: np.ndarray) -> np.ndarray:
        melody = player.astype(np.uint8)[None, :]  # (1, P)
        stream = self._sample(
            self.generator.model,
            num_steps=1,
            batch_size=1,
            options=self._options(),
            seed=self.settings.seed * 100_003 + step,
            primer=self._history(0, step),
            melody=melody if player.any() else None,
        )
        frame = np.asarray(next(iter(stream))[0]).astype(bool)
        frame &= ~player  # the player sounds the melody; the model only what lies under it
        self._play_model_frame(frame)
        return frame

    def _call_and_response(self, step: int, player: np.ndarray) -> np.ndarray:
        if self._answer is not None:
            return self._answer_step()
        if player.any():
            if self._call_start is None:
                self._call_start = step
            self._last_active = step
            return np.zeros(self.num_pitches, dtype=bool)
        pause_steps = max(1, round(self.settings.pause_beats * self.steps_per_beat))
        if self._call_start is not None and step >= self._last_active + 1 + pause_steps:
            self._begin_answer(step)
            return self._answer_step()
        return np.zeros(self.num_pitches, dtype=bool)

    def _begin_answer(self, step: int) -> None:
        s = self.settings
        call_end = self._last_active + 1
        primer = self._history(self._call_start, call_end)
        answer_steps = s.answer_bars * s.beats_per_bar * self.steps_per_beat
        record = Answer(
            call_start_step=self._call_start,
            call_end_step=call_end,
            answer_start_step=step,
            call_end_s=self.step_time(step) - self.start_s,
            answer_steps=answer_steps,
            heard_end_s=self._released_s,
        )
        self.report.answers.append(record)
        frames = self._sample(
            self.generator.model,
            num_steps=answer_steps + MAX_LEAD_STEPS,
            batch_size=1,
            # Rests of a beat at most: an answer that stays silent is heard as none at all.
            options=self._options(max_silence_steps=self.steps_per_beat),
            seed=s.seed * 100_003 + step,
            primer=primer,
        )
        frames = (np.asarray(f[0]).astype(bool) for f in frames)
        # Skip leading rests so the answer begins with a note, right after the pause.
        lead = list(itertools.islice(frames, 1))
        skipped = 0
        while lead and not lead[0].any() and skipped < MAX_LEAD_STEPS:
            lead = list(itertools.islice(frames, 1))
            skipped += 1
        self._answer = itertools.chain(lead, frames)
        self._answer_left = answer_steps
        self._call_start, self._last_active = None, -1
        self.state = "answering"

    def _answer_step(self) -> np.ndarray:
        frame = next(self._answer, None) if self._answer_left > 0 else None
        if frame is None:
            self._answer = None
            self.state = "listening"
            silent = np.zeros(self.num_pitches, dtype=bool)
            self._play_model_frame(silent)
            return silent
        self._answer_left -= 1
        began = self._play_model_frame(frame)
        answer = self.report.answers[-1]
        if began and answer.first_note_s is None:
            answer.first_note_s = self.clock() - self.start_s
            answer.first_note_due_s = self.step_time(self.step) - self.start_s
        return frame

    # -- the end -----------------------------------------------------------------------
    def stop(self) -> None:
        """Silence everything now (the player's echoed notes, the model's, the metronome)."""
        self._queue.clear()
        self._model_now = set()
        panic(self.output, self._sounding.notes)
        self._sounding.notes.clear()

    def roll(self) -> np.ndarray:
        """Everything played so far, player and model, one frame per step: ``(T, P)`` uint8."""
        if not self._player:
            return np.zeros((0, self.num_pitches), dtype=np.uint8)
        player, model = np.stack(self._player), np.stack(self._model_heard)
        return (player | model).astype(np.uint8)

    def provenance(self) -> dict[str, Any]:
        """Where the session came from: model, settings, tempo changes, calls and answers."""
        return {
            "generator": f"tuneforge {__version__}",
            "kind": "jam",
            "model": self.generator.name,
            "model_sha256": self.generator.model_sha256,
            "cell": self.generator.config.get("cell"),
            "steps_per_beat": self.steps_per_beat,
            "settings": asdict(self.settings),
            "tempo_changes": self.tempo_changes,
            "steps": self.step,
            "answers": [
                {k: v for k, v in asdict(a).items() if not k.endswith("_s")}
                for a in self.report.answers
            ],
        }

    def save(self, midi_path: str | Path) -> tuple[Path, Path]:
        """Write the session as MIDI (provenance in a text event) and the schedule as JSON."""
        from tuneforge.music.midi import roll_to_midi

        midi_path = Path(midi_path)
        make_folder(midi_path.parent)
        roll = self.roll()
        if len(roll) == 0:
            roll = np.zeros((1, self.num_pitches), dtype=np.uint8)
        record = self.provenance()
        with replacing(midi_path) as partial:
            roll_to_midi(
                roll,
                partial,
                steps_per_beat=self.steps_per_beat,
                tempo_bpm=self.tempo_changes[0][1],
                program=self.settings.program,
                text_meta=PROVENANCE_PREFIX
                + json.dumps(record, sort_keys=True, separators=(",", ":")),
            )
        late = self.report.step_late_s
        schedule = {
            **record,
            "clock_start_s": self.start_s,  # the session's start on its clock (monotonic)
            "step_due_s": [round(t, 9) for t in self.report.step_due_s],
            "step_sent_late_s": [round(t, 6) for t in late],
            "step_s": self.step_s,
            "answers": [asdict(a) for a in self.report.answers],
            "step_late_s": {
                "median": float(np.median(late)) if late else None,
                "max": float(np.max(late)) if late else None,
                "last": float(late[-1]) if late else None,
            },
        }
        json_path = midi_path.with_suffix(".json")
        write_text(json_path, json.dumps(schedule, indent=2, sort_keys=True) + "\n")
        return midi_path, json_path
