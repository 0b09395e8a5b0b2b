"""Per-frame NLL and frame accuracy against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tuneforge.evaluate import SCORED_FRAMES, FrameScores, score_rolls
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
