"""Temperature sampling from a sequence model, with primers and constraints.

The model predicts frame ``t`` from the frames before it. Sampling starts from a zero frame (or
from a primer fed through the model), draws each pitch from
``Bernoulli(sigmoid(logits / temperature))`` and feeds the drawn frame back in, one step at a
time, for a whole batch at once. Constraints act on the probabilities before or after the draw:

- a pitch range and a key/scale mask set the logits of forbidden pitches to -inf;
- ``max_polyphony`` keeps only the K likeliest of the pitches drawn in a step;
- ``max_silence_steps`` ends a silence that lasts that long by switching on the likeliest
  allowed pitch, so a model stuck in silence keeps playing.

Uniform draws come from a CPU :class:`torch.Generator` seeded explicitly, so the same model,
options and seed give the same frames on any device.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def _model_pitches(model: torch.nn.Module) -> tuple[int, int]:
    """(lowest MIDI pitch, number of pitches) of a model's frames."""
    config = getattr(model, "config", None)
    return getattr(config, "lowest_pitch", 21), getattr(config, "num_pitches", 88)


def sample_stream(
    model: torch.nn.Module,
    *,
    num_steps: int,
    batch_size: int = 1,
    options: SamplingOptions | None = None,
    seed: int = 0,
    primer: np.ndarray | None = None,
    melody: np.ndarray | None = None,
    num_threads: int | None = 1,
) -> Iterator[torch.Tensor]:
    """Yield ``num_steps`` sampled frames, each a CPU uint8 tensor of shape ``(B, P)``.

    The model runs on its own device; the draws are made on the CPU from a generator seeded
    with ``seed``. With a ``primer`` roll ``(T0, P)``, the model first reads the primer (the
    same for every sample of the batch) and the samples continue it; the primer itself is not
    yielded.

    With a ``melody`` roll ``(num_steps, P)`` the pieces harmonize it (see
    :func:`melody_constraints`): each step keeps the melody's top note and only the drawn notes
    under it, and the model reads the result, so later steps follow the melody. A step's notes
    are drawn before that step's melody note is known to the model, as in any left-to-right
    model; ``max_polyphony`` counts the harmony only.

    ``num_threads`` sets torch's intra-op threads until the stream ends (None: leave them).
    One step is too small to share out, and idle OpenMP workers spin on every core between
    steps: on a busy 2-core machine one thread samples a minute of music in 0.3 s, two in 2 s
    or more, and the spinning starves a synthesizer playing alongside.
    """
    options = options or SamplingOptions()
    if num_steps < 1:
        raise ConfigError(f"nothing to sample: the length is {num_steps} steps; ask for more")
    if batch_size < 1:
        raise ConfigError(f"the number of pieces must be at least 1, got {batch_size}")
    lowest_pitch, num_pitches = _model_pitches(model)
    allowed = torch.from_numpy(
        pitch_mask(options, lowest_pitch=lowest_pitch, num_pitches=num_pitches)
    )
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    # Logits of forbidden pitches become -inf: probability exactly 0, never drawn.
    forbidden = torch.where(allowed, 0.0, float("-inf")).to(device=device, dtype=dtype)  # (P,)
    inverse_temperature = 1.0 / options.temperature
    silent_steps = torch.zeros(batch_size, dtype=torch.long)  # (B,)
    rows = torch.arange(batch_size)
    melody_on = melody_below = None
    if melody is not None:
        if len(melody) != num_steps or np.shape(melody)[1] != num_pitches:
            raise ConfigError(f"the melody must be a ({num_steps}, {num_pitches}) roll")
        on, below = melody_constraints(melody)
        melody_on, melody_below = torch.from_numpy(on), torch.from_numpy(below)  # (T, P)

    was_training = model.training
    threads_before = torch.get_num_threads()
    model.eval()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        with torch.inference_mode():
            if primer is not None and len(primer):
                primer_t = torch.as_tensor(np.asarray(primer), dtype=dtype, device=device)
                if primer_t.ndim != 2 or primer_t.shape[1] != num_pitches:
                    raise ConfigError(f"the primer must be a (T, {num_pitches}) roll")
                primer_batch = primer_t.unsqueeze(0).expand(batch_size, -1, -1)  # (B, T0, P)
                logits, state = model(primer_batch)
                logits = logits[:, -1]  # (B, P) predicts the first frame after the primer
            else:
                first = torch.zeros(batch_size, 1, num_pitches, dtype=dtype, device=device)
                logits, state = model(first)
                logits = logits[:, -1]
            for step in range(num_steps):
                probs = torch.sigmoid(logits * inverse_temperature + forbidden).float().cpu()
                draws = torch.rand(probs.shape, generator=generator) < probs  # (B, P) bool
                if options.max_polyphony is not None and options.max_polyphony < num_pitches:
                    # Among drawn pitches keep the K likeliest; undrawn ones rank below all.
                    ranked = torch.where(draws, probs, torch.full_like(probs, -1.0))
                    top = ranked.topk(options.max_polyphony, dim=1).indices
                    keep = torch.zeros_like(draws).scatter_(1, top, True)
                    draws &= keep
                if options.max_silence_steps is not None:
                    silent = ~draws.any(dim=1)  # (B,)
                    stuck = silent & (silent_steps >= options.max_silence_steps)
                    if bool(stuck.any()):
                        likeliest = probs.argmax(dim=1)  # (B,) forbidden pitches have p = 0
                        draws[rows[stuck], likeliest[stuck]] = True
                        silent = silent & ~stuck
                    silent_steps = torch.where(silent, silent_steps + 1, 0)
                if melody_on is not None:
                    draws = (draws & melody_below[step]) | melody_on[step]
                frame = draws.to(torch.uint8)  # (B, P)
                yield frame
                if step + 1 < num_steps:
                    x = frame.to(device=device, dtype=dtype).unsqueeze(1)  # (B, 1, P)
                    logits, state = model(x, state)
                    logits = logits[:, -1]
    finally:
        model.train(was_training)
        torch.set_num_threads(threads_before)


def sample_rolls(
    model: torch.nn.Module,
    *,
    num_steps: int,
    batch_size: int = 1,
    options: SamplingOptions | None = None,
    seed: int = 0,
    primer: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Sample ``batch_size`` pieces of ``num_steps`` frames; each a ``(T, P)`` uint8 roll.

    With a primer, each roll starts with the primer's frames followed by the sampled ones.
    Same arguments as :func:`sample_stream`, which does the work.
    """
    frames = list(
        sample_stream(
            model,
            num_steps=num_steps,
            batch_size=batch_size,
            options=options,
            seed=seed,
            primer=primer,
        )
    )
    sampled = torch.stack(frames, dim=1).numpy()  # (B, T, P)
    if primer is not None and len(primer):
        head = np.broadcast_to(np.asarray(primer, dtype=np.uint8), (batch_size, *primer.shape))
        sampled = np.concatenate([head, sampled], axis=1)
    return [np.ascontiguousarray(roll) for roll in sampled]


def score_frames(model: torch.nn.Module, roll: np.ndarray) -> np.ndarray:
    """Log-likelihood (nats) of each frame of ``roll`` ``(T, P)`` under the model.

    The same protocol as :func:`tuneforge.evaluate.score_rolls`: frame ``t`` is predicted from
    frames ``< t`` and the first frame is never scored, so entry 0 is NaN and
    ``-nanmean(result)`` is the per-frame NLL that training reports for this piece.
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or len(roll) < 2:
        raise ConfigError("a piece needs at least two steps to be scored; give a longer file")
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            frames = torch.as_tensor(roll, dtype=param.dtype, device=param.device).unsqueeze(0)
            logits, _ = model(frames[:, :-1])  # (1, T-1, P) predicts frames 1..T-1
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.float(), frames[:, 1:].float(), reduction="none"
            )
            per_frame = (-bce.sum(-1)).squeeze(0).double().cpu().numpy()  # (T-1,)
    finally:
        model.train(was_training)
    return np.concatenate([[np.nan], per_frame])
