"""The memorization meter: how much of a piece occurs verbatim in a corpus (a training split).

:class:`CorpusIndex` hashes every frame of the corpus (64 bits), then every window of one bar
of consecutive frames, and sorts the window hashes. A query piece looks up each of its own
one-bar windows; each hit is a seed, seeds on one diagonal (same corpus offset) with
consecutive query positions are one run, and each run is extended frame by frame on both
sides as far as the frames agree. So the longest verbatim run is found in
O((N + Q) log N + hits) for a corpus of N frames and a query of Q, never by comparing every
pair of positions.

Windows made only of silent frames are not indexed: a run must hold at least one note, so
silence copied from silence never counts. A run shorter than the window is not found (0 bars).
The window is ``steps_per_bar`` steps (a 4/4 bar unless told otherwise); a query given its time
signatures is cut into its own bars (which must be at least a window long, so pick the window
as the shortest bar of the pieces involved), and its runs are counted in the bar they start in.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tuneforge.music.pianoroll import NUM_PITCHES

_SEED = 20240601  # fixed: hashes (and so the results) are the same on every run


def _odd_constants(count: int) -> np.ndarray:
    """``count`` random odd 64-bit multipliers from a fixed seed."""
    values = np.random.default_rng(_SEED).integers(0, 2**63, size=count, dtype=np.uint64)
    return values * np.uint64(2) + np.uint64(1)


_FRAME_MULTIPLIERS = _odd_constants(2)  # one per 64-bit half of a packed frame
_WINDOW_CACHE: dict[int, np.ndarray] = {}


def _window_multipliers(window_steps: int) -> np.ndarray:
    if window_steps not in _WINDOW_CACHE:
        _WINDOW_CACHE[window_steps] = _odd_constants(window_steps + 2)[2:]
    return _WINDOW_CACHE[window_steps]


def _mix(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads every input bit over the whole word."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def frame_hashes(roll: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every frame of a roll (equal frames, equal hashes).

    Shape:
        roll: (T, 88); returns (T,) uint64.
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != NUM_PITCHES:
        raise ValueError(f"a piano roll has shape (T, {NUM_PITCHES}), got {roll.shape}")
    packed = np.zeros((roll.shape[0], 16), dtype=np.uint8)
    packed[:, :11] = np.packbits(roll.astype(bool), axis=1)  # 88 bits -> 11 bytes
    halves = packed.view(np.uint64)  # (T, 2)
    return _mix(halves[:, 0] * _FRAME_MULTIPLIERS[0] + _mix(halves[:, 1] * _FRAME_MULTIPLIERS[1]))


def window_hashes(hashes: np.ndarray, window_steps: int) -> np.ndarray:
    """A hash of every window of ``window_steps`` consecutive frame hashes: a sum of the
    frame hashes under a distinct random odd multiplier per offset, then mixed.

    Shape:
        hashes: (T,) uint64; returns (max(T - window_steps + 1, 0),) uint64.
    """
    count = max(len(hashes) - window_steps + 1, 0)
    total = np.zeros(count, dtype=np.uint64)
    for offset, multiplier in enumerate(_window_multipliers(window_steps)):
        total += hashes[offset : offset + count] * multiplier  # wraps modulo 2**64
    return _mix(total)


def _sounding_windows(roll: np.ndarray, window_steps: int) -> np.ndarray:
    """Whether each window of ``window_steps`` frames holds at least one note. (W,) bool."""
    sounding = np.concatenate([[0], np.cumsum(roll.any(axis=1), dtype=np.int64)])
    count = max(roll.shape[0] - window_steps + 1, 0)
    return sounding[window_steps : window_steps + count] - sounding[:count] > 0


@dataclass(frozen=True)
class CopiedRun:
    """A run of consecutive frames of the query that occurs verbatim in the corpus."""

    length_steps: int
    steps_per_bar: int
    query_start_step: int
    corpus_piece: int  # index into the corpus
    corpus_name: str
    corpus_start_step: int
    query_bar_number: int = 0  # the query's bar the run starts in, from 1 (0: by steps_per_bar)

    @property
    def length_bars(self) -> float:
        """The run's length in bars (frames / steps per bar)."""
        return self.length_steps / self.steps_per_bar

    @property
    def query_bar(self) -> int:
        """The bar of the query where the run starts, counted from 1."""
        return self.query_bar_number or self.query_start_step // self.steps_per_bar + 1

    @property
    def corpus_bar(self) -> int:
        """The bar of the corpus piece where the run starts, counted from 1 (the run may
        start inside it: see ``corpus_start_step``)."""
        return self.corpus_start_step // self.steps_per_bar + 1

    def to_dict(self) -> dict:
        """A JSON-ready dict with the bar figures as well as the steps."""
        return {
            **asdict(self),
            "length_bars": self.length_bars,
            "query_bar": self.query_bar,
            "corpus_bar": self.corpus_bar,
        }


@dataclass(frozen=True)
class Memorization:
    """What one query piece shares with the corpus."""

    longest: CopiedRun | None  # None: no bar of the query occurs in the corpus
    bars: int  # full bars of the query with at least one note (bar-aligned in the query)
    copied_bars: int  # of those, bars that occur verbatim somewhere in the corpus

    @property
    def longest_bars(self) -> float:
        """Length of the longest copied run in bars (0 when none)."""
        return self.longest.length_bars if self.longest else 0.0

    @property
    def copied_bar_share(self) -> float:
        """Share of the query's bars with notes that occur verbatim in the corpus."""
        return self.copied_bars / self.bars if self.bars else 0.0

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "longest": self.longest.to_dict() if self.longest else None,
            "longest_bars": self.longest_bars,
            "bars": self.bars,
            "copied_bars": self.copied_bars,
            "copied_bar_share": self.copied_bar_share,
        }


class CorpusIndex:
    """Every one-bar window of a corpus of rolls, hashed and sorted for lookup.

    Args:
        rolls: the corpus, (T, 88) 0/1 each.
        names: one name per roll (default: their indices as text).
        steps_per_bar: frames per bar, the window length (4/4: 4 * steps_per_beat).
    """

    def __init__(
        self,
        rolls: Sequence[np.ndarray],
        names: Sequence[str] | None = None,
        *,
        steps_per_bar: int,
    ) -> None:
        if steps_per_bar < 1:
            raise ValueError(f"steps_per_bar must be >= 1, got {steps_per_bar}")
        names = [str(i) for i in range(len(rolls))] if names is None else list(names)
        if len(names) != len(rolls):
            raise ValueError(f"{len(names)} names for {len(rolls)} rolls")
        self.names = names
        self.steps_per_bar = steps_per_bar
        lengths = np.array([len(r) for r in rolls], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])  # (P + 1,) piece bounds
        self._piece_start = np.repeat(self._starts[:-1], lengths)  # (N,) its piece's first frame
        self._piece_end = np.repeat(self._starts[1:], lengths)  # (N,) past its piece's last
        frames: list[np.ndarray] = []
        keys: list[np.ndarray] = []
        positions: list[np.ndarray] = []
        for start, roll in zip(self._starts, rolls, strict=False):
            hashes = frame_hashes(roll)
            frames.append(hashes)
            usable = np.flatnonzero(_sounding_windows(roll, steps_per_bar))
            keys.append(window_hashes(hashes, steps_per_bar)[usable])
            positions.append(usable + start)
        self._frames = np.concatenate(frames) if frames else np.zeros(0, np.uint64)  # (N,)
        all_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        all_positions = np.concatenate(positions) if positions else np.zeros(0, np.int64)
        order = np.argsort(all_keys, kind="stable")
        self._keys = all_keys[order]  # (W,) sorted window hashes
        self._positions = all_positions[order]  # (W,) their global start frames

    @property
    def num_frames(self) -> int:
        """Frames in the corpus."""
        return int(self._frames.size)

    def query(
        self,
        roll: np.ndarray,
        *,
        time_signatures: Sequence[tuple[int, int, int]] | None = None,
        steps_per_beat: int | None = None,
    ) -> Memorization:
        """The longest run of ``roll`` found verbatim in the corpus, and the share of its bars
        (bar-aligned in the query, anywhere in the corpus) found verbatim.

        Without ``time_signatures`` the query's bars are windows of ``steps_per_bar`` from its
        first step; with them (``(step, num, den)`` events, none: 4/4, and ``steps_per_beat``)
        its bars follow its meter, and a longest run is measured in the bar it starts in.

        Shape:
            roll: (T, 88).
        """
        bar = self.steps_per_bar
        roll = np.asarray(roll)
        hashes = frame_hashes(roll)  # (T,)
        windows = window_hashes(hashes, bar)  # (W,)
        sounding = _sounding_windows(roll, bar)
        left = np.searchsorted(self._keys, windows, side="left")
        right = np.searchsorted(self._keys, windows, side="right")
        counts = np.where(sounding, right - left, 0)

        metered = time_signatures is not None
        if metered:
            if steps_per_beat is None:
                raise ValueError("a query with time signatures needs steps_per_beat")
            bounds = _bar_bounds(len(roll), steps_per_beat, time_signatures, bar)
        else:
            starts = np.arange(0, len(windows), bar)  # full bars only: windows that fit
            bounds = np.stack([starts, starts + bar], axis=1)
        notes = np.concatenate([[0], np.cumsum(roll.any(axis=1), dtype=np.int64)])
        with_notes = bounds[notes[bounds[:, 1]] - notes[bounds[:, 0]] > 0]  # (bars, 2)
        bars = len(with_notes)
        if not counts.any():
            return Memorization(None, bars, 0)

        # Every (query start, corpus start) seed; keep those that start a run of seeds along
        # their diagonal: (q - 1, c - 1) is a seed exactly when window q - 1 is sounding, both
        # frames before exist in their pieces and agree. No sort over the seeds is needed.
        query_starts = np.repeat(np.arange(len(windows)), counts)
        first_of = np.repeat(np.cumsum(counts) - counts, counts)
        corpus_starts = self._positions[
            np.repeat(left, counts) + np.arange(query_starts.size) - first_of
        ]
        continues = (query_starts > 0) & (corpus_starts > self._piece_start[corpus_starts])
        before_q, before_c = query_starts[continues] - 1, corpus_starts[continues] - 1
        continues[continues] = sounding[before_q] & (hashes[before_q] == self._frames[before_c])
        q0 = query_starts[~continues]
        c0 = corpus_starts[~continues]
        length = np.full(q0.size, bar, dtype=np.int64)
        q0, c0, length = self._extend(hashes, q0, c0, length)
        # A bar is copied when one (maximal) run covers it whole: every verbatim occurrence
        # of a bar with a note holds a seed window, so its run is among these.
        # The furthest end of a run starting at or before each step, then one lookup per bar:
        # O(runs + steps), not a (bars, runs) table.
        reach = np.full(len(roll) + 1, -1, dtype=np.int64)
        np.maximum.at(reach, q0, q0 + length)
        reach = np.maximum.accumulate(reach)
        copied = int((reach[with_notes[:, 0]] >= with_notes[:, 1]).sum())

        best = np.lexsort((c0, q0, -length))[0]
        piece = int(np.searchsorted(self._starts, c0[best], side="right") - 1)
        steps_per_bar, bar_number = bar, 0
        if metered:
            bar_number = int(np.searchsorted(bounds[:, 0], q0[best], side="right"))
            if bar_number:  # a run that starts past the last full bar keeps the window
                start, end = bounds[bar_number - 1]
                steps_per_bar = int(end - start)
        longest = CopiedRun(
            length_steps=int(length[best]),
            steps_per_bar=steps_per_bar,
            query_start_step=int(q0[best]),
            corpus_piece=piece,
            corpus_name=self.names[piece],
            corpus_start_step=int(c0[best] - self._starts[piece]),
            query_bar_number=bar_number,
        )
        return Memorization(longest, bars, copied)

    def _extend(
        self, hashes: np.ndarray, q0: np.ndarray, c0: np.ndarray, length: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grow each run frame by frame on both sides while query and corpus frames agree,
        never past either piece's bounds (silent frames included: they sit inside a run)."""
        piece_start, piece_end = self._piece_start[c0], self._piece_end[c0]
        q0, c0, length = q0.copy(), c0.copy(), length.copy()
        active = np.arange(q0.size)
        while active.size:  # backwards
            q, c = q0[active] - 1, c0[active] - 1
            ok = (q >= 0) & (c >= piece_start[active])
            ok[ok] = hashes[q[ok]] == self._frames[c[ok]]
            active = active[ok]
            q0[active] -= 1
            c0[active] -= 1
            length[active] += 1
        active = np.arange(q0.size)
        while active.size:  # forwards
            q, c = q0[active] + length[active], c0[active] + length[active]
            ok = (q < hashes.size) & (c < piece_end[active])
            ok[ok] = hashes[q[ok]] == self._frames[c[ok]]
            active = active[ok]
            length[active] += 1
        return q0, c0, length


def _bar_bounds(
    length_steps: int, steps_per_beat: int, time_signatures, window_steps: int
) -> np.ndarray:
    """``(start, end)`` of every full bar of a piece by its meter (one the piece does not end
    inside). Shape: (bars, 2) int64."""
    from tuneforge.music.meter import bar_starts, step_in_bar

    longest_bar = 32 * steps_per_beat  # past any bar of a real meter: finds where the last ends
    positions = step_in_bar(length_steps + longest_bar, steps_per_beat, time_signatures)
    starts = bar_starts(positions)
    bounds = np.stack([starts[:-1], starts[1:]], axis=1).astype(np.int64)
    bounds = bounds[bounds[:, 1] <= length_steps]
    if (bounds[:, 1] - bounds[:, 0] < window_steps).any():
        raise ValueError(
            f"a bar of the query is shorter than the index window ({window_steps} steps); "
            "build the index with the shortest bar as steps_per_bar"
        )
    return bounds


@dataclass(frozen=True)
class MemorizationSummary:
    """The memorization figures of many query pieces."""

    pieces: int
    median_longest_bars: float
    max_longest_bars: float
    copied_bar_share: float  # copied bars over all bars with notes: bar-weighted, not a mean

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def summarize(results: Iterable[Memorization]) -> MemorizationSummary:
    """Median and max of the longest copied runs (bars), and the bar-weighted copied share."""
    results = list(results)
    longest = [r.longest_bars for r in results]
    bars = sum(r.bars for r in results)
    return MemorizationSummary(
        pieces=len(results),
        median_longest_bars=float(statistics.median(longest)) if longest else 0.0,
        max_longest_bars=max(longest, default=0.0),
        copied_bar_share=sum(r.copied_bars for r in results) / bars if bars else 0.0,
    )


def calibrate(index: CorpusIndex, held_out: Iterable[np.ndarray]) -> MemorizationSummary:
    """What the corpus's own held-out pieces (e.g. the valid split) share with it: the
    yardstick a model's pieces are read against."""
    return summarize(index.query(roll) for roll in held_out)
