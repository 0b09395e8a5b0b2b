"""Per-frame NLL and frame accuracy against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tuneforge.errors import ConfigError
from tuneforge.evaluate import (
    SCORED_FRAMES,
    FrameScores,
    evaluate_checkpoint,
    rru_windows,
    score_rolls,
    score_windows,
)
from tuneforge.models.sequence import ModelConfig, SequenceModel


def constant_model(probabilities: np.ndarray) -> SequenceModel:
    """A model whose prediction ignores its input: pitch k sounds with probability p_k."""
    model = SequenceModel(ModelConfig(cell="lstm", hidden_size=4))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.logit(torch.as_tensor(probabilities, dtype=torch.float32)))
    return model


def random_rolls(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((length, 88)) < 0.1).astype(np.uint8) for length in lengths]


def test_nll_is_the_summed_bce_of_frames_two_to_t_weighted_by_frame():
    probabilities = np.linspace(0.05, 0.6, 88)
    rolls = random_rolls([5, 9, 1, 3])
    scores = score_rolls(constant_model(probabilities), rolls, batch_size=2)
    # By hand: frame 1 of every piece is never predicted; a piece of one frame adds nothing.
    predicted = np.concatenate([roll[1:] for roll in rolls])
    per_frame = -(
        predicted * np.log(probabilities) + (1 - predicted) * np.log(1 - probabilities)
    ).sum(axis=1)
    assert scores.frames == 4 + 8 + 0 + 2
    assert scores.nll == pytest.approx(per_frame.mean(), rel=1e-5)
    assert "2..T" in SCORED_FRAMES


def test_half_probability_costs_88_ln2_nats_per_frame():
    scores = score_rolls(constant_model(np.full(88, 0.5)), random_rolls([7, 4]))
    assert scores.nll == pytest.approx(88 * math.log(2), rel=1e-6)


def test_frame_accuracy_counts_hits_misses_and_false_alarms():
    probabilities = np.full(88, 0.1)
    probabilities[[40, 41]] = 0.9  # predicts pitches 40 and 41 in every frame
    roll = np.zeros((4, 88), dtype=np.uint8)
    roll[1:, 40] = 1  # hit in frames 2..4
    roll[1, 50] = 1  # missed once
    roll[0, 60] = 1  # frame 1 is never scored
    scores = score_rolls(constant_model(probabilities), [roll])
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (3, 3, 1)
    assert scores.accuracy == pytest.approx(3 / 7)


def test_batching_and_order_do_not_change_the_scores():
    model = SequenceModel(ModelConfig(cell="gru", hidden_size=8))
    rolls = random_rolls([12, 3, 30, 7, 19], seed=3)
    one = score_rolls(model, rolls, batch_size=1)
    many = score_rolls(model, rolls[::-1], batch_size=4)
    assert one.frames == many.frames
    assert one.nll == pytest.approx(many.nll, rel=1e-5)
    assert one.accuracy == many.accuracy


def test_scores_merge_through_their_tensor_form():
    first = FrameScores(10.0, 2, 1, 2, 3)
    second = FrameScores.from_tensor(first.as_tensor() * 2)
    assert second == FrameScores(20.0, 4, 2, 4, 6)
    assert second.nll == 5.0


def bce_per_frame(frames: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """-log p(frame) of each frame under independent pitches of probability p_k, by hand."""
    return -(frames * np.log(probabilities) + (1 - frames) * np.log(1 - probabilities)).sum(axis=1)


def test_rru_protocol_drops_silence_cuts_windows_and_weights_each_window_once():
    probabilities = np.linspace(0.05, 0.6, 88)
    rng = np.random.default_rng(5)
    long_piece = (rng.random((450, 88)) < 0.1).astype(np.uint8)
    long_piece[[0, 10, 200, 449]] = 0  # silent frames: dropped before windowing
    short_piece = (rng.random((6, 88)) < 0.2).astype(np.uint8)
    short_piece[:, 3] = 1  # never silent
    scores = score_windows(constant_model(probabilities), [long_piece, short_piece], batch_size=2)
    sounding = long_piece[long_piece.any(axis=1)]
    assert len(sounding) == 446
    # By hand: windows 0..199, 200..399, 400..445 of the long piece, and the short piece whole;
    # the first frame of each window is not predicted; each window counts once.
    windows = [sounding[:200], sounding[200:400], sounding[400:], short_piece]
    means = [bce_per_frame(w[1:], probabilities).mean() for w in windows]
    assert scores.windows == 4
    assert scores.frames == 199 + 199 + 45 + 5
    assert scores.nll == pytest.approx(np.mean(means), rel=1e-5)
    # Frame-weighted over the same frames would differ: the windows have unequal lengths.
    frame_weighted = np.concatenate([bce_per_frame(w[1:], probabilities) for w in windows]).mean()
    assert abs(scores.nll - frame_weighted) > 1e-4


def test_rru_windows_leave_out_windows_that_predict_nothing():
    roll = np.zeros((203, 88), dtype=np.uint8)
    roll[:, 30] = 1
    roll[5] = 0
    # 202 sounding frames: one window of 200 and one of 2.
    assert [len(w) for w in rru_windows([roll])] == [200, 2]
    # 201 sounding frames: the lone last frame would predict nothing and is left out.
    assert [len(w) for w in rru_windows([roll[:202]])] == [200]


def test_both_protocols_on_one_checkpoint_name_themselves(tmp_path):
    from tests.test_cli_train import write_tiny_mat
    from tuneforge.checkpoint import save_checkpoint

    data = write_tiny_mat(tmp_path / "tiny.mat")
    model = constant_model(np.full(88, 0.5))
    save_checkpoint(tmp_path / "model", model, meta={"steps_per_beat": 1})
    tcn = evaluate_checkpoint(tmp_path / "model", str(data), device="cpu")
    rru = evaluate_checkpoint(tmp_path / "model", str(data), device="cpu", protocol="rru")
    assert (tcn.protocol, rru.protocol) == ("tcn", "rru")
    assert tcn.nll == pytest.approx(88 * math.log(2), rel=1e-6)
    assert rru.nll == pytest.approx(88 * math.log(2), rel=1e-6)
    assert rru.windows == 3 and tcn.windows is None
    assert "window" in rru.scored_frames and "2..T" in tcn.scored_frames
    with pytest.raises(ConfigError, match="tcn, rru"):
        evaluate_checkpoint(tmp_path / "model", str(data), protocol="bptt")
