"""Sampling from the structured models: scores, constraints, beat alignment, melodies."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from tuneforge.evaluate import score_frames
from tuneforge.models import build_model
from tuneforge.models.biaxial import BiaxialConfig
from tuneforge.models.sequence import ModelConfig
from tuneforge.sample import SamplingOptions, sample_rolls, sample_steps, sample_stream


def note_axis_model(seed: int = 0, *, bias: float = -2.5, **changes):
    """A small random sequence model with a note-axis head that plays a few notes per step."""
    torch.manual_seed(seed)
    config = ModelConfig(
        hidden_size=16, head="note-axis", note_hidden_size=8, meter=True, **changes
    )
    model = build_model(config).eval()
    with torch.no_grad():
        model.head.bias.fill_(bias)
    return model


def biaxial_model(seed: int = 0, **changes):
    """A small random Biaxial model."""
    torch.manual_seed(seed)
    config = BiaxialConfig(time_hidden_size=8, note_hidden_size=6, time_layers=1, **changes)
    model = build_model(config).eval()
    with torch.no_grad():
        model.note_axis.out.bias.fill_(-2.5)
    return model


MODELS = {
    "note-axis": lambda: note_axis_model(articulation=True),
    "biaxial": lambda: biaxial_model(articulation=True),
}


def _sampled(model, num_steps: int, **options):
    steps = list(sample_steps(model, num_steps=num_steps, seed=4, **options))
    roll = torch.stack([s.frame[0] for s in steps]).numpy()
    onsets = torch.stack([s.onsets[0] for s in steps]).numpy()
    log_lik = np.array([float(s.log_likelihood[0]) for s in steps])
    return roll, onsets, log_lik


@pytest.mark.parametrize("name", list(MODELS))
def test_teacher_forcing_gives_the_scores_the_sampler_assigned(name):
    model = MODELS[name]()
    roll, onsets, sampled = _sampled(model, 24, options=SamplingOptions(temperature=1.0))
    assert roll.sum() > 0 and np.isnan(sampled[0])
    scored = score_frames(model, roll, onsets=onsets)
    np.testing.assert_allclose(scored[1:], sampled[1:], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_compiled_scan_draws_what_the_pitch_by_pitch_loop_draws(name, monkeypatch):
    model = MODELS[name]()
    options = SamplingOptions(temperature=0.9, max_polyphony=3, key="D minor")
    fast = sample_rolls(model, num_steps=20, batch_size=2, seed=9, options=options)
    assert model.note_axis.last_scan == "compiled"
    monkeypatch.setenv("TUNEFORGE_NO_NUMBA", "1")
    slow = sample_rolls(model, num_steps=20, batch_size=2, seed=9, options=options)
    assert model.note_axis.last_scan == "torch"
    assert all(np.array_equal(a, b) for a, b in zip(fast, slow, strict=True))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_constraint_holds_for_the_structured_samplers(name):
    model = MODELS[name]()
    options = SamplingOptions(
        temperature=1.5, key="G major", lowest_pitch=48, highest_pitch=84, max_polyphony=2
    )
    rolls = sample_rolls(model, num_steps=40, batch_size=3, seed=1, options=options)
    pitches = np.arange(21, 109)
    in_key = np.isin((pitches - 7) % 12, (0, 2, 4, 5, 7, 9, 11)) & (pitches >= 48) & (pitches <= 84)
    for roll in rolls:
        assert roll.sum() > 0
        assert not roll[:, ~in_key].any()  # a forbidden pitch is never drawn
        assert roll.sum(axis=1).max() <= 2
    quiet = sample_rolls(
        model, num_steps=60, seed=2, options=SamplingOptions(max_silence_steps=3, temperature=0.3)
    )[0]
    sounding = np.flatnonzero(quiet.any(axis=1))
    gaps = np.diff(np.concatenate([[-1], sounding, [60]])) - 1
    assert gaps.max() <= 3
    primer = np.zeros((6, 88), np.uint8)
    primer[:, [39, 43]] = 1
    primed = sample_rolls(model, num_steps=10, seed=3, primer=primer)[0]
    assert primed.shape == (16, 88) and np.array_equal(primed[:6], primer)


def test_the_same_seed_gives_the_same_frames_and_the_batch_differs():
    model = note_axis_model(articulation=True)
    first = sample_rolls(model, num_steps=30, batch_size=3, seed=5)
    again = sample_rolls(model, num_steps=30, batch_size=3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])


class DownbeatModel(torch.nn.Module):
    """Plays C4 exactly on the steps whose bar position it reads as 0: shows where the sampler
    says a predicted step falls."""

    num_pitches, lowest_pitch, articulation, joint = 88, 21, False, False

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = ModelConfig()

    def read(self, frames, onsets, bar_positions, state=None):
        return bar_positions[:, -1], state

    def draw(self, context, previous, drawer):
        logits = torch.full((context.shape[0], 88), -50.0)
        logits[:, 39] = torch.where(context == 0, 50.0, -50.0)
        play = drawer.draw_all(logits)
        return play, play & ~previous


def test_generated_onsets_fall_where_the_model_meant_them():
    roll = sample_rolls(DownbeatModel(), num_steps=64)[0]
    assert np.flatnonzero(roll[:, 39]).tolist() == [16, 32, 48]  # the downbeats of 4/4
    three = list(sample_stream(DownbeatModel(), num_steps=40, time_signature=(3, 4)))
    assert np.flatnonzero(torch.stack(three)[:, 0, 39].numpy()).tolist() == [12, 24, 36]


@pytest.mark.parametrize("name", list(MODELS))
def test_a_melody_is_kept_and_harmonized_to_the_end(name):
    model = MODELS[name]()
    melody = np.zeros((64, 88), np.uint8)
    for step in range(64):
        melody[step, 40 + (0, 2, 4, 5)[(step // 4) % 4]] = 1  # a tune around C4..F4
    rolls = sample_rolls(model, num_steps=1, seed=0)  # warm-up of the compiled scan
    frames = list(sample_stream(model, num_steps=64, batch_size=2, seed=6, melody=melody))
    pieces = torch.stack(frames, dim=1).numpy()  # (B, T, P)
    top = melody.argmax(axis=1)
    for piece in pieces:
        assert (piece[np.arange(64), top] == 1).all()  # the tune sounds at every step
        for step in range(64):
            assert not piece[step, top[step] + 1 :].any()  # nothing above it
        harmony = piece.sum(axis=1) - 1
        assert all(harmony[start : start + 16].sum() > 0 for start in range(0, 64, 16))
    assert rolls


def test_the_previous_default_draws_the_frames_it_drew_before(tmp_path):
    """The shipped model of tuneforge 0.1 draws the same frames for a seed (written one step
    later than 0.1 wrote them: the opening frame now comes first)."""
    from tuneforge.generate import load_generator

    model = load_generator("nottingham-lstm").model
    expected = {
        (1.0, None, None, None): "de31c11403907e37dae7581a2ca5139f4d88555cf7734c733ba114db57ca7be6",
        (
            0.8,
            3,
            "D dorian",
            None,
        ): "40aa6f6b6107261a3bb4dc7c34fda0558b8707e20a689e187e29010085027d57",
    }
    for (temperature, polyphony, key, silence), digest in expected.items():
        options = SamplingOptions(
            temperature=temperature, max_polyphony=polyphony, key=key, max_silence_steps=silence
        )
        rolls = np.stack(sample_rolls(model, num_steps=64, batch_size=3, seed=11, options=options))
        assert not rolls[:, 0].any()  # the opening frame
        assert hashlib.sha256(np.ascontiguousarray(rolls[:, 1:]).tobytes()).hexdigest() == digest
