"""Time signatures -> the position of every step in its bar, in pure numpy.

A step is ``1 / steps_per_beat`` of a quarter note (as everywhere in tuneforge). A bar of
``n/d`` lasts ``n * 4 / d`` quarter notes, so 4/4 is ``4 * steps_per_beat`` steps, 3/4 is three
quarters and 6/8 is three quarters too (six eighths). A time signature starts a new bar at its
step; before the first one (and in the benchmark sets, which carry none) the meter is 4/4.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_TIME_SIGNATURE = (4, 4)  # what the MIDI spec assumes, and what rolls without meter get


def bar_steps_of(numerator: int, denominator: int, steps_per_beat: int) -> int:
    """Steps in one bar of ``numerator/denominator`` (at least 1)."""
    if numerator < 1 or denominator < 1:
        return 4 * steps_per_beat
    return max(1, round(numerator * 4 * steps_per_beat / denominator))


def step_in_bar(
    length_steps: int,
    steps_per_beat: int,
    time_signatures: Iterable[tuple[int, int, int]] = (),
) -> np.ndarray:
    """The position of each of ``length_steps`` steps within its bar (0 on a downbeat).

    Args:
        time_signatures: ``(step, numerator, denominator)`` events, as
            :class:`~tuneforge.music.midi.Piece` holds them; later events win at one step.

    Shape:
        returns (length_steps,) int32.
    """
    changes = {0: DEFAULT_TIME_SIGNATURE}
    for step, numerator, denominator in sorted(time_signatures):
        if 0 <= step < max(length_steps, 1):
            changes[int(step)] = (int(numerator), int(denominator))
    positions = np.zeros(max(length_steps, 0), dtype=np.int32)
    starts = sorted(changes)
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else length_steps
        bar = bar_steps_of(*changes[start], steps_per_beat)
        positions[start:end] = np.arange(end - start, dtype=np.int32) % bar
    return positions


def bar_starts(positions: np.ndarray) -> np.ndarray:
    """Indices of the steps that begin a bar (where :func:`step_in_bar` is 0)."""
    return np.flatnonzero(np.asarray(positions) == 0)


DENOMINATORS = (1, 2, 4, 8, 16, 32)  # what a MIDI time signature can say (a power of two)
MAX_NUMERATOR = 32


def parse_time_signature(text: str) -> tuple[int, int]:
    """``"6/8"`` -> ``(6, 8)``; a :class:`ValueError` names what a time signature can be."""
    numerator, slash, denominator = str(text).strip().partition("/")
    try:
        value = (int(numerator), int(denominator)) if slash else None
    except ValueError:
        value = None
    if value is None or not 1 <= value[0] <= MAX_NUMERATOR or value[1] not in DENOMINATORS:
        raise ValueError(
            f"time signature {text!r} is not N/D with N in 1..{MAX_NUMERATOR} and D one of "
            f"{', '.join(map(str, DENOMINATORS))}; try 4/4, 3/4 or 6/8"
        )
    return value


def format_time_signature(meter: tuple[int, int]) -> str:
    """``(6, 8)`` -> ``"6/8"``."""
    return f"{int(meter[0])}/{int(meter[1])}"


def opening_time_signature(time_signatures: Iterable[tuple[int, int, int]]) -> tuple[int, int]:
    """The meter a piece starts in: its time signature at step 0 (the last one there wins),
    else 4/4."""
    opening = DEFAULT_TIME_SIGNATURE
    for step, numerator, denominator in sorted(time_signatures):
        if step == 0:
            opening = (int(numerator), int(denominator))
    return opening


def time_signature_shares(pieces: Iterable[Iterable[tuple[int, int, int]]]) -> dict[str, float]:
    """Share of pieces opening in each meter, likeliest first: ``{"4/4": 0.57, "6/8": 0.4}``.

    ``pieces`` holds each piece's ``(step, numerator, denominator)`` events; a piece without
    any (a benchmark set's) counts as 4/4.
    """
    counts: dict[str, int] = {}
    for events in pieces:
        name = format_time_signature(opening_time_signature(events))
        counts[name] = counts.get(name, 0) + 1
    total = sum(counts.values())
    if not total:
        return {format_time_signature(DEFAULT_TIME_SIGNATURE): 1.0}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {name: round(count / total, 4) for name, count in ranked}


def draw_time_signatures(shares: dict[str, float], count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` meters drawn in proportion to ``shares`` (as :func:`time_signature_shares`
    gives them), reproducibly from ``seed``; meters that do not parse are left out."""
    meters, weights = [], []
    for name, share in shares.items():
        try:
            meter = parse_time_signature(name)
        except ValueError:
            continue
        if share > 0:
            meters.append(meter)
            weights.append(float(share))
    if not meters:
        return [DEFAULT_TIME_SIGNATURE] * count
    # A stream of its own, so the draw of meters never moves the sampler's random numbers.
    rng = np.random.default_rng([int(seed), 0x6D65746572])
    chosen = rng.choice(len(meters), size=count, p=np.asarray(weights) / sum(weights))
    return [meters[int(index)] for index in chosen]
