"""tuneforge.data.memorization against a brute-force search, and on planted copies."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.data.memorization import CorpusIndex, calibrate, summarize


def sparse_roll(rng: np.random.Generator, length_steps: int, pitches: int = 2) -> np.ndarray:
    """Few pitches, so that random pieces share runs of frames (and silent frames)."""
    roll = np.zeros((length_steps, 88), dtype=np.uint8)
    roll[:, 40 : 40 + pitches] = rng.random((length_steps, pitches)) < 0.3
    return roll


def brute_force(corpus: list[np.ndarray], query: np.ndarray, bar: int):
    """(longest run length, bars with notes, copied bars) by comparing every alignment.

    A run is a maximal stretch of agreeing frames on one alignment, at least a bar long and
    not all silent."""
    longest = 0
    for piece in corpus:
        for shift in range(-len(query) + 1, len(piece)):
            run = 0
            for q in range(len(query) + 1):
                c = q + shift
                if q < len(query) and 0 <= c < len(piece) and (query[q] == piece[c]).all():
                    run += 1
                    continue
                stretch = query[q - run : q]
                if run >= bar and stretch.any():
                    longest = max(longest, run)
                run = 0
    bars = copied = 0
    for start in range(0, len(query) - bar + 1, bar):
        window = query[start : start + bar]
        if not window.any():
            continue
        bars += 1
        copied += any(
            (piece[c : c + bar] == window).all()
            for piece in corpus
            for c in range(len(piece) - bar + 1)
        )
    return longest, bars, copied


@pytest.mark.parametrize("seed", range(12))
def test_matches_a_brute_force_search_on_small_random_data(seed):
    rng = np.random.default_rng(seed)
    bar = int(rng.integers(1, 4))
    corpus = [sparse_roll(rng, int(rng.integers(1, 30))) for _ in range(3)]
    query = sparse_roll(rng, int(rng.integers(1, 30)))
    result = CorpusIndex(corpus, steps_per_bar=bar).query(query)
    longest, bars, copied = brute_force(corpus, query, bar)
    assert result.longest_bars * bar == longest
    assert (result.bars, result.copied_bars) == (bars, copied)
    if result.longest:  # the run it names is really there, in full
        run = result.longest
        piece = corpus[run.corpus_piece]
        got = query[run.query_start_step : run.query_start_step + run.length_steps]
        there = piece[run.corpus_start_step : run.corpus_start_step + run.length_steps]
        assert got.shape == there.shape and (got == there).all()


def dense_roll(rng: np.random.Generator, length_steps: int) -> np.ndarray:
    return (rng.random((length_steps, 88)) < 0.2).astype(np.uint8)


def test_a_planted_copy_of_eight_bars_is_found_exactly():
    rng = np.random.default_rng(7)
    bar = 16  # 4 steps per beat, 4/4
    corpus = [dense_roll(rng, 40 * bar) for _ in range(5)]
    names = [f"tune{i}.mid" for i in range(5)]
    copy = corpus[2][10 * bar : 18 * bar]  # bars 11..18 of tune2
    query = np.concatenate([dense_roll(rng, 3 * bar), copy, dense_roll(rng, 5 * bar)])
    result = CorpusIndex(corpus, names, steps_per_bar=bar).query(query)
    run = result.longest
    assert run is not None and run.length_bars == 8.0 and result.longest_bars == 8.0
    assert run.corpus_name == "tune2.mid" and run.corpus_piece == 2
    assert run.corpus_start_step == 10 * bar and run.corpus_bar == 11
    assert run.query_start_step == 3 * bar and run.query_bar == 4
    assert (result.bars, result.copied_bars) == (16, 8)
    assert result.copied_bar_share == 0.5


def test_copies_run_on_through_silence_but_silence_alone_is_no_copy():
    rng = np.random.default_rng(3)
    bar = 4
    corpus = [np.concatenate([dense_roll(rng, 2 * bar), np.zeros((3 * bar, 88), np.uint8)])]
    silent = np.zeros((6 * bar, 88), np.uint8)
    index = CorpusIndex(corpus, steps_per_bar=bar)
    assert index.query(silent).longest is None
    assert index.query(silent).bars == 0
    # The corpus piece whole: two bars of notes, then three of rest, all one copy.
    assert index.query(np.concatenate([corpus[0], dense_roll(rng, bar)])).longest_bars == 5.0


def test_runs_never_cross_from_one_corpus_piece_into_the_next():
    rng = np.random.default_rng(5)
    bar = 4
    a, b = dense_roll(rng, 3 * bar), dense_roll(rng, 3 * bar)
    query = np.concatenate([a, b])  # the two pieces back to back: two copies of 3 bars
    assert CorpusIndex([a, b], steps_per_bar=bar).query(query).longest_bars == 3.0


def test_summaries_and_calibration():
    rng = np.random.default_rng(11)
    bar = 4
    corpus = [dense_roll(rng, 10 * bar) for _ in range(3)]
    index = CorpusIndex(corpus, ["a", "b", "c"], steps_per_bar=bar)
    held_out = [corpus[0][: 2 * bar], np.concatenate([corpus[1], dense_roll(rng, 10 * bar)])]
    summary = calibrate(index, held_out)
    assert summary.pieces == 2
    assert summary.max_longest_bars == 10.0 and summary.median_longest_bars == 6.0
    assert summary.copied_bar_share == pytest.approx((2 + 10) / (2 + 20))  # bar-weighted
    assert summarize([]).pieces == 0 and summarize([]).max_longest_bars == 0.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="steps_per_bar"):
        CorpusIndex([], steps_per_bar=0)
    with pytest.raises(ValueError, match="names"):
        CorpusIndex([np.zeros((4, 88), np.uint8)], ["a", "b"], steps_per_bar=4)


def test_a_query_with_its_meter_is_cut_into_its_own_bars():
    rng = np.random.default_rng(13)
    corpus = [dense_roll(rng, 30)]
    # 4/4 for one bar, then 3/4, at one step per beat: bars [0,4) [4,7) [7,10) [10,13) ...
    meter = [(0, 4, 4), (4, 3, 4)]
    query = np.concatenate([dense_roll(rng, 7), corpus[0][5:14], dense_roll(rng, 2)])  # 18 steps
    index = CorpusIndex(corpus, steps_per_bar=3)
    result = index.query(query, time_signatures=meter, steps_per_beat=1)
    # Full bars: [0,4) and five of 3 steps up to 19 > 18, so [16,19) is cut off: 1 + 4 bars.
    assert result.bars == 5
    # The copy covers steps 7..15 (9 frames): bars [7,10) [10,13) [13,16) are copied whole.
    assert result.copied_bars == 3
    run = result.longest
    assert run.query_start_step <= 7 and run.length_steps >= 9
    assert run.steps_per_bar == 3 and run.query_bar == 3  # counted in the query's own bars
    # Without a meter the same query is cut every 3 steps from its start.
    plain = index.query(query)
    assert plain.bars == 6 and plain.longest.query_bar == run.query_start_step // 3 + 1


def test_a_bar_shorter_than_the_window_is_refused():
    index = CorpusIndex([np.ones((8, 88), np.uint8)], steps_per_bar=4)
    with pytest.raises(ValueError, match="shorter than the index window"):
        index.query(np.ones((8, 88), np.uint8), time_signatures=[(0, 2, 4)], steps_per_beat=1)
