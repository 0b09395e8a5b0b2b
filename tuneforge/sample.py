"""Temperature sampling from any model of the registry, with primers and constraints.

The model predicts frame ``t + 1`` from frames ``0..t``; a piece's first frame is never
predicted (as in training), so a piece starts with a given frame: the primer, or else a silent
frame, written as step 0. A harmonized piece's step 0 is drawn under the melody's first note from
a silent frame that is read but not written (so the harmony starts with the tune; that step is
not scored, as a first frame never is). Each later step is drawn by
the model through a :class:`~tuneforge.drawer.StepDrawer` and fed back in, for a whole batch at
once. Constraints:

- a pitch range and a key/scale mask: forbidden pitches have probability 0, never drawn;
- ``max_polyphony``: at most K notes per step;
- ``max_silence_steps``: a silence that lasts that long ends on the likeliest allowed pitch;
- a melody to harmonize: its top note is fixed in every step. A model that draws a step's
  pitches one after another (a note axis) draws several candidate steps under the melody's
  lowest notes and keeps one in proportion to how likely it makes the melody's note, so the
  harmony is conditioned on the tune, not only placed under it.

Uniform draws come from a CPU :class:`torch.Generator` seeded explicitly, so the same model,
options and seed give the same frames on any device. Steps know their position in the piece and
in the bar (4/4 unless another time signature is given), for models that read the meter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from tuneforge.errors import ConfigError

PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Semitones above the tonic of each scale a user may name.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic-minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic-minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "chromatic": tuple(range(12)),
}


def parse_key(spec: str) -> tuple[int, str]:
    """``"G major"``, ``"F#:minor"``, ``"Bb dorian"`` -> (tonic pitch class, scale name).

    A bare tonic (``"D"``) means its major scale.
    """
    parts = spec.replace(":", " ").split()
    if not parts or len(parts) > 2:
        raise ConfigError(f"cannot read key {spec!r}; write TONIC SCALE, e.g. 'G major'")
    tonic = parts[0]
    scale = parts[1].lower() if len(parts) == 2 else "major"
    letter = tonic[:1].upper()
    if letter not in PITCH_CLASSES or any(c not in "#b" for c in tonic[1:]):
        raise ConfigError(f"unknown tonic {tonic!r}; use a letter A-G with optional # or b")
    pitch_class = (PITCH_CLASSES[letter] + tonic.count("#") - tonic.count("b")) % 12
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    return pitch_class, scale


def parse_pitch(text: str) -> int:
    """A MIDI pitch from a number (``"60"``) or a name (``"C4"``, ``"F#5"``, ``"Bb2"``)."""
    text = text.strip()
    if text.isdigit():
        pitch = int(text)
    else:
        letter, rest = text[:1].upper(), text[1:]
        accidentals = len(rest) - len(rest.lstrip("#b"))
        octave = rest[accidentals:]
        if letter not in PITCH_CLASSES or not octave.lstrip("-").isdigit():
            raise ConfigError(f"cannot read pitch {text!r}; write a MIDI number or a name like C4")
        shift = rest[:accidentals].count("#") - rest[:accidentals].count("b")
        pitch = (int(octave) + 1) * 12 + PITCH_CLASSES[letter] + shift
    if not 0 <= pitch <= 127:
        raise ConfigError(f"pitch {text!r} is outside MIDI's 0..127")
    return pitch


def parse_pitch_range(text: str) -> tuple[int, int]:
    """``"48-84"``, ``"C3..C6"`` or ``"C3:C6"`` -> (lowest, highest) MIDI pitch, inclusive."""
    for separator in ("..", ":", "-"):
        low, found, high = text.partition(separator)
        if found and low.strip() and high.strip():
            return parse_pitch(low), parse_pitch(high)
    raise ConfigError(f"cannot read pitch range {text!r}; write LOW-HIGH, e.g. 48-84 or C3..C6")


@dataclass(frozen=True)
class SamplingOptions:
    """How frames are drawn; recorded with every generated file."""

    temperature: float = 0.8  # logits are divided by this before the sigmoid; must be > 0
    max_polyphony: int | None = None  # keep at most this many of the drawn notes per step
    lowest_pitch: int = 21  # MIDI pitch, inclusive: notes below are never drawn
    highest_pitch: int = 108  # MIDI pitch, inclusive: notes above are never drawn
    key: str | None = None  # e.g. "D minor": only pitches of that scale are drawn
    max_silence_steps: int | None = None  # a silence this long gets the likeliest pitch

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}; try 0.8")
        if self.max_polyphony is not None and self.max_polyphony < 1:
            raise ConfigError(f"max polyphony must be at least 1, got {self.max_polyphony}")
        if not 0 <= self.lowest_pitch <= self.highest_pitch <= 127:
            raise ConfigError(
                f"pitch range {self.lowest_pitch}..{self.highest_pitch} is invalid;"
                " give two MIDI pitches, low <= high, in 0..127"
            )
        if self.max_silence_steps is not None and self.max_silence_steps < 1:
            raise ConfigError(f"max silence must be at least 1 step, got {self.max_silence_steps}")
        if self.key is not None:
            parse_key(self.key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for provenance records."""
        return asdict(self)


def pitch_mask(options: SamplingOptions, *, lowest_pitch: int, num_pitches: int) -> np.ndarray:
    """Boolean ``(num_pitches,)``: which columns of the roll the options allow."""
    pitches = np.arange(lowest_pitch, lowest_pitch + num_pitches)
    allowed = (pitches >= options.lowest_pitch) & (pitches <= options.highest_pitch)
    if options.key is not None:
        tonic, scale = parse_key(options.key)
        allowed &= np.isin((pitches - tonic) % 12, SCALES[scale])
    if not allowed.any():
        raise ConfigError("the pitch range and key leave no pitch to play; widen the range")
    return allowed


def melody_constraints(melody: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(on, below)``, both ``(T, P)`` bool, for harmonizing the top line of ``melody``.

    ``on`` holds the melody: the highest sounding pitch of each step. ``below`` allows, at each
    step where the melody sounds, only the pitches under it (the harmony stays beneath the
    tune); where the melody rests, every pitch.
    """
    roll = np.asarray(melody).astype(bool)
    if roll.ndim != 2:
        raise ConfigError("a melody must be a (T, P) roll")
    num_pitches = roll.shape[1]
    sounding = roll.any(axis=1)  # (T,)
    top = np.where(sounding, num_pitches - 1 - np.argmax(roll[:, ::-1], axis=1), num_pitches)
    on = np.zeros_like(roll)
    on[np.nonzero(sounding)[0], top[sounding]] = True
    below = np.arange(num_pitches)[None, :] < top[:, None]
    return on, below


MELODY_CANDIDATES = 16  # candidate steps drawn per piece when a joint model harmonizes


@dataclass(frozen=True)
class SampledStep:
    """One step of every piece of a batch, as the sampler drew it.

    ``log_likelihood`` is the model's own log-probability (temperature 1) of the step's play
    bits given the piece so far, NaN for the step a piece starts with (never predicted) and
    for a step a constraint changed after the model drew it (a silence ended by force).
    """

    frame: torch.Tensor  # (B, P) uint8, 1 where a pitch sounds
    onsets: torch.Tensor  # (B, P) uint8, 1 where a note is struck
    log_likelihood: torch.Tensor  # (B,) float64, nats
    articulation_log_likelihood: torch.Tensor  # (B,) float64, nats (0 without articulation)
    step: int  # position of the step in the piece, the primer's steps included


@dataclass
class _Melody:
    on: torch.Tensor  # (T, P) bool
    below: torch.Tensor  # (T, P) bool
    candidates: int = 1


def sample_steps(
    model: torch.nn.Module,
    *,
    num_steps: int,
    batch_size: int = 1,
    options: SamplingOptions | None = None,
    seed: int = 0,
    primer: np.ndarray | None = None,
    primer_onsets: np.ndarray | None = None,
    melody: np.ndarray | None = None,
    time_signature: tuple[int, int] | Sequence[tuple[int, int]] = (4, 4),
    num_threads: int | None = 1,
) -> Iterator[SampledStep]:
    """Yield ``num_steps`` steps of ``batch_size`` pieces, one :class:`SampledStep` at a time.

    Without a primer the first step is the piece's opening frame (silent, or the melody's first
    note) and ``num_steps - 1`` steps are drawn. With a ``primer`` roll ``(T0, P)`` (the same for
    every piece; its onsets from ``primer_onsets`` or from the roll itself) the model reads it
    and ``num_steps`` steps are drawn after it; the primer is not yielded.

    With a ``melody`` roll ``(num_steps, P)`` the pieces harmonize it (see
    :func:`melody_constraints`): each step keeps the melody's top note and draws only under it.

    ``time_signature`` is the pieces' meter, one ``(numerator, denominator)`` for all or one per
    piece: a model that reads meter hears each step's place in its bar.

    ``num_threads`` sets torch's intra-op threads until the stream ends (None: leave them).
    One step is too small to share out, and idle OpenMP workers spin on every core between
    steps: on a busy 2-core machine one thread samples several times faster than two, and the
    spinning starves a synthesizer playing alongside.
    """
    from tuneforge.drawer import StepDrawer
    from tuneforge.models.frames import canonical_onsets_t
    from tuneforge.music.meter import bar_steps_of

    options = options or SamplingOptions()
    if num_steps < 1:
        raise ConfigError(f"nothing to sample: the length is {num_steps} steps; ask for more")
    if batch_size < 1:
        raise ConfigError(f"the number of pieces must be at least 1, got {batch_size}")
    num_pitches = model.num_pitches
    allowed = torch.from_numpy(
        pitch_mask(options, lowest_pitch=model.lowest_pitch, num_pitches=num_pitches)
    )
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    drawer = StepDrawer(
        inverse_temperature=1.0 / options.temperature,
        allowed=allowed,
        max_polyphony=options.max_polyphony,
        generator=generator,
    )
    steps_per_beat = int(getattr(model.config, "steps_per_beat", 4))
    meters = _meters_of(time_signature, batch_size)
    bar_steps = torch.tensor([bar_steps_of(*meter, steps_per_beat) for meter in meters])
    guide = None
    if melody is not None:
        if len(melody) != num_steps or np.shape(melody)[1] != num_pitches:
            raise ConfigError(f"the melody must be a ({num_steps}, {num_pitches}) roll")
        on, below = melody_constraints(melody)
        guide = _Melody(
            torch.from_numpy(on),
            torch.from_numpy(below),
            MELODY_CANDIDATES if model.joint else 1,
        )
    if primer is not None and len(primer):
        opening = torch.as_tensor(np.asarray(primer), dtype=torch.bool)
        if opening.ndim != 2 or opening.shape[1] != num_pitches:
            raise ConfigError(f"the primer must be a (T, {num_pitches}) roll")
        opening_onsets = (
            canonical_onsets_t(opening[None].float())[0].bool()
            if primer_onsets is None
            else torch.as_tensor(np.asarray(primer_onsets), dtype=torch.bool) & opening
        )
        to_draw = num_steps
        melody_offset = len(opening)  # melody step 0 is the first step after the primer
        written_opening = False  # the primer is the caller's, not written again
        hidden_opening = False
    else:
        # A silent opening frame. Without a melody it is the piece's step 0. A harmonized piece
        # only reads it and draws its step 0 under the melody too: an opening of the melody's
        # note alone would read as a tune played solo, and the harmony would come in late.
        opening = torch.zeros(1, num_pitches, dtype=torch.bool)
        opening_onsets = opening.clone()
        hidden_opening = guide is not None
        written_opening = not hidden_opening
        to_draw = num_steps if hidden_opening else num_steps - 1
        melody_offset = 0
    start = len(opening)
    first_step = start - 1 if hidden_opening else start  # the piece's index of the first draw

    was_training = model.training
    threads_before = torch.get_num_threads()
    model.eval()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        with torch.inference_mode():
            if written_opening:
                nan = torch.full((batch_size,), float("nan"), dtype=torch.float64)
                frame = opening.expand(batch_size, -1).to(torch.uint8)
                yield SampledStep(frame, frame.clone(), nan, torch.zeros_like(nan), 0)

            def as_input(frames: torch.Tensor) -> torch.Tensor:
                return frames.to(device=device, dtype=dtype).expand(batch_size, -1, -1)

            # Each frame read carries the bar position of the step it predicts.
            ahead = torch.arange(1, start + 1) + (first_step - start)
            positions = ahead[None] % bar_steps[:, None]  # (B, T0)
            context, state = model.read(
                as_input(opening[None]), as_input(opening_onsets[None]), positions.to(device)
            )
            previous = opening[-1].expand(batch_size, -1).clone()  # (B, P) bool
            sounding = torch.nonzero(opening.any(dim=1)).flatten()
            trailing = len(opening) - 1 - int(sounding[-1]) if len(sounding) else len(opening)
            if hidden_opening:
                trailing = 0  # the frame read before the first step is not part of the piece
            silent_steps = torch.full((batch_size,), trailing, dtype=torch.long)
            for index in range(to_draw):
                step = first_step + index
                play, onsets = _draw_step(
                    model, drawer, context, previous, guide, step - melody_offset
                )
                ll = drawer.log_likelihood.clone()
                if step == 0:  # a piece's first frame is never scored
                    ll.fill_(float("nan"))
                if options.max_silence_steps is not None:
                    silent = ~play.any(dim=1)
                    stuck = silent & (silent_steps >= options.max_silence_steps)
                    if bool(stuck.any()):
                        likeliest = drawer.probs.argmax(dim=1)  # forbidden pitches have p = 0
                        rows = torch.nonzero(stuck).squeeze(1)
                        play[rows, likeliest[rows]] = True
                        onsets[rows, likeliest[rows]] = True
                        ll[rows] = float("nan")
                        silent = silent & ~stuck
                    silent_steps = torch.where(silent, silent_steps + 1, 0)
                frame = play.to(torch.uint8)
                yield SampledStep(
                    frame,
                    onsets.to(torch.uint8),
                    ll,
                    drawer.articulation_log_likelihood.clone(),
                    step,
                )
                previous = play
                if index + 1 < to_draw:
                    position = ((step + 1) % bar_steps)[:, None]  # (B, 1)
                    context, state = model.read(
                        play[:, None].to(device=device, dtype=dtype),
                        onsets[:, None].to(device=device, dtype=dtype),
                        position.to(device),
                        state,
                    )
    finally:
        model.train(was_training)
        torch.set_num_threads(threads_before)


def _meters_of(time_signature, batch_size: int) -> list[tuple[int, int]]:
    """One ``(numerator, denominator)`` per piece from one for all or a list of them."""
    if len(time_signature) == 2 and all(isinstance(v, (int, np.integer)) for v in time_signature):
        return [(int(time_signature[0]), int(time_signature[1]))] * batch_size
    meters = [(int(n), int(d)) for n, d in time_signature]
    if len(meters) != batch_size:
        raise ConfigError(f"{len(meters)} time signatures for {batch_size} pieces; give one each")
    return meters


def _draw_step(model, drawer, context, previous, guide: _Melody | None, melody_step: int):
    """Draw one step of every piece; with a melody and a joint model, draw candidates and
    keep one per piece in proportion to the probability they give the melody's notes."""
    rows = previous.shape[0]
    articulation = model.articulation
    if guide is None:
        drawer.begin(rows, articulation=articulation)
        drawn = model.draw(context, previous, drawer)
        drawer.finish()
        return drawn
    on = guide.on[melody_step].expand(rows, -1)
    below = guide.below[melody_step].expand(rows, -1)
    if guide.candidates == 1 or not bool(on.any()):
        drawer.begin(rows, articulation=articulation, melody_on=on, melody_below=below)
        drawn = model.draw(context, previous, drawer)
        drawer.finish()
        return drawn
    count = guide.candidates
    drawer.begin(
        rows * count,
        articulation=articulation,
        melody_on=on.repeat_interleave(count, 0),
        melody_below=below.repeat_interleave(count, 0),
    )
    play, onsets = model.draw(
        context.repeat_interleave(count, 0), previous.repeat_interleave(count, 0), drawer
    )
    drawer.finish()
    weights = drawer.log_weight.view(rows, count)
    weights = torch.softmax(weights - weights.max(dim=1, keepdim=True).values, dim=1)
    chosen = torch.multinomial(weights.float(), 1, generator=drawer.generator).squeeze(1)
    keep = torch.arange(rows) * count + chosen
    for name in ("log_likelihood", "articulation_log_likelihood", "probs"):
        setattr(drawer, name, getattr(drawer, name)[keep])
    return play[keep], onsets[keep]


def sample_stream(model: torch.nn.Module, **arguments) -> Iterator[torch.Tensor]:
    """The frames of :func:`sample_steps` (same arguments), each a CPU uint8 ``(B, P)``."""
    for sampled in sample_steps(model, **arguments):
        yield sampled.frame


def sample_rolls(
    model: torch.nn.Module,
    *,
    num_steps: int,
    batch_size: int = 1,
    options: SamplingOptions | None = None,
    seed: int = 0,
    primer: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Sample ``batch_size`` pieces; each a ``(T, P)`` uint8 roll (the primer's frames, then
    the sampled ones). Same arguments as :func:`sample_steps`, which does the work."""
    frames = [
        step.frame
        for step in sample_steps(
            model,
            num_steps=num_steps,
            batch_size=batch_size,
            options=options,
            seed=seed,
            primer=primer,
        )
    ]
    sampled = torch.stack(frames, dim=1).numpy()  # (B, T, P)
    if primer is not None and len(primer):
        head = np.broadcast_to(np.asarray(primer, dtype=np.uint8), (batch_size, *primer.shape))
        sampled = np.concatenate([head, sampled], axis=1)
    return [np.ascontiguousarray(roll) for roll in sampled]
