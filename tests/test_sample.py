"""Temperature sampling, constraints, primers, streaming and frame scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.tiny_models import tiny_model
from tuneforge.cli.rollview import pitch_name
from tuneforge.errors import ConfigError
from tuneforge.evaluate import score_frames, score_rolls
from tuneforge.sample import (
    SCALES,
    SamplingOptions,
    melody_constraints,
    parse_key,
    parse_pitch,
    parse_pitch_range,
    pitch_mask,
    sample_rolls,
    sample_steps,
    sample_stream,
)


def _flat_model(bias: np.ndarray | float):
    """A model whose logits are ``bias`` whatever it reads: all weights into the head are 0."""
    model = tiny_model()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32).expand(88))
    return model


def test_the_same_seed_gives_the_same_pieces_and_another_seed_others():
    model = tiny_model()
    first = sample_rolls(model, num_steps=40, batch_size=3, seed=7)
    again = sample_rolls(model, num_steps=40, batch_size=3, seed=7)
    other = sample_rolls(model, num_steps=40, batch_size=3, seed=8)
    assert len(first) == 3 and first[0].shape == (40, 88) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert not np.array_equal(first[0], first[1])  # the pieces of a batch differ


def test_temperature_divides_the_logits():
    model = _flat_model(-1.0)  # p = sigmoid(-1 / T)
    for temperature in (0.25, 1.0, 4.0):
        rolls = sample_rolls(
            model, num_steps=200, options=SamplingOptions(temperature=temperature), seed=1
        )
        expected = 1 / (1 + np.exp(1 / temperature))
        assert rolls[0].mean() == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("temperature", [0.0, -0.5])
def test_a_temperature_of_zero_or_less_is_an_error(temperature):
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        SamplingOptions(temperature=temperature)


def test_max_polyphony_keeps_the_likeliest_notes():
    bias = np.linspace(2.0, 6.0, 88)  # every pitch is likely; the highest ones most
    rolls = sample_rolls(_flat_model(bias), num_steps=50, options=SamplingOptions(max_polyphony=3))
    per_step = rolls[0].sum(axis=1)
    assert per_step.max() <= 3 and per_step.mean() > 2.5
    assert set(np.flatnonzero(rolls[0].any(axis=0))) <= set(range(80, 88))


def test_key_and_pitch_range_masks():
    options = SamplingOptions(key="D dorian", lowest_pitch=50, highest_pitch=74, temperature=1.0)
    rolls = sample_rolls(_flat_model(1.0), num_steps=30, options=options)
    pitches = 21 + np.flatnonzero(rolls[0].any(axis=0))
    assert pitches.size > 5
    assert pitches.min() >= 50 and pitches.max() <= 74
    assert set((pitches - 2) % 12) <= set(SCALES["dorian"])


def test_a_long_silence_is_ended_with_the_likeliest_pitch():
    bias = np.full(88, -30.0)
    bias[39] = -20.0  # C4 is the likeliest of the (all unlikely) pitches
    model = _flat_model(bias)
    silent = sample_rolls(model, num_steps=40)[0]
    assert silent.sum() == 0
    escaped = sample_rolls(model, num_steps=40, options=SamplingOptions(max_silence_steps=4))[0]
    sounding_steps = np.flatnonzero(escaped.any(axis=1))
    assert set(np.flatnonzero(escaped.any(axis=0))) == {39}
    # Silence never lasts more than 4 steps.
    gaps = np.diff(np.concatenate([[-1], sounding_steps, [40]])) - 1
    assert gaps.max() <= 4 and len(sounding_steps) == 8


def test_the_primer_is_read_first_and_kept_at_the_start():
    model = tiny_model()
    primer = np.zeros((8, 88), np.uint8)
    primer[:, [39, 43, 46]] = 1
    primed = sample_rolls(model, num_steps=20, primer=primer, seed=3, batch_size=2)
    plain = sample_rolls(model, num_steps=20, seed=3, batch_size=2)
    assert primed[0].shape == (28, 88)
    assert np.array_equal(primed[0][:8], primer) and np.array_equal(primed[1][:8], primer)
    assert not np.array_equal(primed[0][8:], plain[0])  # the model heard the primer


def _count_reads(model) -> list:
    """Record the shape of every frame block the sampler feeds ``model``."""
    calls: list = []
    read = model.read

    def counting(frames, *args, **kwargs):
        calls.append(tuple(frames.shape))
        return read(frames, *args, **kwargs)

    model.read = counting
    return calls


def test_frames_stream_out_one_model_step_at_a_time():
    model = tiny_model()
    calls = _count_reads(model)
    stream = sample_stream(model, num_steps=100, batch_size=2, seed=0)
    first = next(stream)  # the opening frame: nothing drawn yet
    assert first.shape == (2, 88) and first.dtype == torch.uint8 and not first.any()
    assert calls == []
    next(stream)
    assert len(calls) == 1  # the model read the opening to draw step 1; the rest waits
    rest = list(stream)
    assert len(rest) == 98 and len(calls) == 99
    assert all(shape[1] == 1 for shape in calls)  # (B, 1, P): one step per call


def test_sampling_runs_on_one_thread_and_restores_the_setting():
    model = tiny_model()
    before = torch.get_num_threads()
    seen = []
    read = model.read
    model.read = lambda *args: seen.append(torch.get_num_threads()) or read(*args)
    sample_rolls(model, num_steps=5)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_frame_scores_agree_with_the_evaluation_protocol():
    model = tiny_model()
    roll = sample_rolls(model, num_steps=30, seed=5)[0]
    per_frame = score_frames(model, roll)
    assert per_frame.shape == (30,) and np.isnan(per_frame[0])
    assert np.all(per_frame[1:] < 0)
    reference = score_rolls(model, [roll])
    assert reference.frames == 29
    assert -np.nansum(per_frame) == pytest.approx(reference.nll_sum, rel=1e-5)


def test_scoring_needs_two_frames():
    with pytest.raises(ConfigError, match="at least two steps"):
        score_frames(tiny_model(), np.zeros((1, 88), np.uint8))


def test_keys_and_pitches_are_read_as_musicians_write_them():
    assert parse_key("G major") == (7, "major")
    assert parse_key("F#:minor") == (6, "minor")
    assert parse_key("Bb") == (10, "major")
    assert parse_pitch_range("C3..C6") == (48, 84)
    assert parse_pitch_range("40-60") == (40, 60)
    for bad in ("H major", "C lydianish", "C major extra"):
        with pytest.raises(ConfigError):
            parse_key(bad)
    with pytest.raises(ConfigError):
        parse_pitch_range("C3")
    with pytest.raises(ConfigError):
        SamplingOptions(lowest_pitch=80, highest_pitch=60)
    with pytest.raises(ConfigError):
        SamplingOptions(max_polyphony=0)


def test_a_mask_that_leaves_nothing_is_an_error():
    options = SamplingOptions(lowest_pitch=61, highest_pitch=61, key="C major")  # C#4 only
    with pytest.raises(ConfigError, match="no pitch"):
        pitch_mask(options, lowest_pitch=21, num_pitches=88)


@given(st.integers(0, 127))
def test_pitch_names_read_back(pitch):
    assert parse_pitch(pitch_name(pitch)) == pitch


def test_a_harmonized_melody_keeps_its_top_line_with_the_harmony_under_it():
    melody = np.zeros((12, 88), np.uint8)
    melody[0:4, 40] = 1  # a tune: a note, a rest, a higher note with a lower one under it
    melody[8:12, [30, 47]] = 1
    on, below = melody_constraints(melody)
    assert on[:4, 40].all() and on[8:, 47].all() and not on[8:, 30].any() and on.sum() == 8
    assert below[0, 39] and not below[0, 40] and below[5].all()
    model = _flat_model(2.0)  # every pitch likely: the constraint alone shapes the result
    options = SamplingOptions(temperature=1.0)
    rolls = sample_rolls(model, num_steps=12, batch_size=3, seed=2, options=options)
    harmonized = list(sample_stream(model, num_steps=12, batch_size=3, seed=2, melody=melody))
    for piece in torch.stack(harmonized, dim=1).numpy():  # (T, P)
        assert (piece[on.astype(bool)] == 1).all()  # the melody sounds
        assert not piece[:4, 41:].any() and not piece[8:, 48:].any()  # nothing above it
        assert piece[:4, :40].sum() > 0 and piece[4:8, 41:].sum() > 0  # a harmony, free in rests
    assert rolls[0][:4, 41:].any()  # without the melody the same model plays above 40
    with pytest.raises(ConfigError, match="melody"):
        list(sample_stream(model, num_steps=5, melody=melody))


def test_a_harmonized_piece_has_harmony_from_its_first_step():
    # The first step is drawn under the melody (from a silent frame read before the piece),
    # not written as the melody's note alone, which would read as a tune played solo.
    melody = np.zeros((8, 88), np.uint8)
    melody[:, 40] = 1
    model = _flat_model(2.0)
    steps = list(sample_steps(model, num_steps=8, batch_size=4, seed=3, melody=melody))
    assert [s.step for s in steps] == list(range(8))
    first = steps[0].frame.numpy()
    assert (first[:, 40] == 1).all() and not first[:, 41:].any()
    assert first[:, :40].sum(axis=1).min() > 0  # every piece has notes under it at step 0
    assert torch.isnan(steps[0].log_likelihood).all()  # a piece's first frame is not scored
    assert torch.isfinite(steps[1].log_likelihood).all()
