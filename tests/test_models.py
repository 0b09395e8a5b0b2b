"""The model registry and the structured models: exact likelihoods, equivariance, old configs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tuneforge.errors import ConfigError
from tuneforge.models import build_model, config_from_dict, make_config
from tuneforge.models.biaxial import BiaxialConfig
from tuneforge.models.frames import FrameBatch
from tuneforge.models.sequence import ModelConfig, SequenceModel

PITCHES = 4  # 2^4 frames: small enough to enumerate every one


def tiny_structured(kind: str, **changes):
    """A small random model over PITCHES pitches, in eval mode."""
    torch.manual_seed(3)
    if kind == "sequence":
        config = ModelConfig(
            hidden_size=8,
            head="note-axis",
            note_hidden_size=6,
            num_pitches=PITCHES,
            meter=True,
            **changes,
        )
    else:
        config = BiaxialConfig(
            time_hidden_size=8,
            note_hidden_size=6,
            num_pitches=PITCHES,
            dropout=0.0,
            **changes,
        )
    return build_model(config).eval()


def every_frame_after(history: torch.Tensor) -> FrameBatch:
    """Rows that share ``history`` (T, P) and end in each of the 2^P possible frames."""
    frames = torch.tensor(list(itertools.product([0.0, 1.0], repeat=PITCHES)))  # (2^P, P)
    pieces = torch.cat([history[None].expand(len(frames), -1, -1), frames[:, None]], dim=1)
    return FrameBatch.from_frames(pieces)


@pytest.mark.parametrize("kind", ["sequence", "biaxial"])
def test_the_note_axis_gives_every_frame_a_probability_and_they_sum_to_one(kind):
    model = tiny_structured(kind)
    history = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1]])
    with torch.no_grad():
        log_lik, _ = model(every_frame_after(history))
    last = log_lik.play[:, -1].double()  # (2^P,) log p(frame | history)
    assert torch.exp(last).sum().item() == pytest.approx(1.0, abs=1e-5)
    assert len(set(np.round(last.numpy(), 6))) > 4  # the frames are not equally likely


@pytest.mark.parametrize("kind", ["sequence", "biaxial"])
def test_articulation_of_the_held_notes_sums_to_one_too(kind):
    model = tiny_structured(kind, articulation=True)
    held = torch.tensor([1.0, 1, 0, 1])
    pieces, onsets = [], []
    for bits in itertools.product([0.0, 1.0], repeat=3):  # which of the 3 held notes re-strike
        pieces.append(torch.stack([held, held]))
        struck = held.clone()
        struck[[0, 1, 3]] = torch.tensor(bits)
        onsets.append(torch.stack([held, struck]))
    frames = torch.stack(pieces)
    batch = FrameBatch(
        inputs=frames[:, :1],
        targets=frames[:, 1:],
        input_onsets=torch.stack(onsets)[:, :1],
        target_onsets=torch.stack(onsets)[:, 1:],
        bar_positions=torch.zeros(len(frames), 1, dtype=torch.long),
        onsets_known=torch.ones(len(frames), dtype=torch.bool),
    )
    with torch.no_grad():
        log_lik, _ = model(batch)
    play = log_lik.play[:, 0]
    assert torch.allclose(play, play[0].expand_as(play))  # play bits are the same in every row
    assert torch.exp(log_lik.articulation[:, 0].double()).sum().item() == pytest.approx(1.0)


def test_the_biaxial_time_axis_is_transposition_equivariant_without_the_pitch_feature():
    torch.manual_seed(0)
    model = build_model(BiaxialConfig(time_hidden_size=8, note_hidden_size=4, pitch_feature=False))
    model.eval()
    roll = torch.zeros(1, 12, 88)
    for step in range(12):
        roll[0, step, [40 + step % 3, 44, 47 + (step // 4)]] = 1.0
    onsets = torch.zeros_like(roll)
    positions = (torch.arange(12) % 16)[None]
    with torch.no_grad():
        base, _ = model.time_outputs(roll, onsets, positions)
        shifted, _ = model.time_outputs(torch.roll(roll, 5, dims=-1), onsets, positions)
    # Pitches whose window of +-12 stays inside the keyboard both times see the same thing.
    inside = slice(12, 88 - 12 - 5)
    torch.testing.assert_close(shifted[..., 5 + 12 : 88 - 12, :], base[..., inside, :])
    with_feature = build_model(BiaxialConfig(time_hidden_size=8, note_hidden_size=4)).eval()
    with torch.no_grad():
        a, _ = with_feature.time_outputs(roll, onsets, positions)
        b, _ = with_feature.time_outputs(torch.roll(roll, 5, dims=-1), onsets, positions)
    assert not torch.allclose(b[..., 5 + 12 : 88 - 12, :], a[..., inside, :])


def test_a_config_without_a_kind_is_the_sequence_model_of_tuneforge_0_1():
    old = {"cell": "gru", "hidden_size": 12, "num_layers": 1, "dropout": 0.0, "cell_options": {}}
    config = config_from_dict(old)
    assert isinstance(config, ModelConfig) and config.head == "bernoulli" and not config.meter
    assert isinstance(build_model(old), SequenceModel)
    assert config_from_dict(config.to_dict()) == config
    assert config.to_dict()["kind"] == "sequence"


def test_unknown_kinds_heads_and_options_are_named_with_what_is_valid():
    with pytest.raises(ConfigError, match="unknown model 'nade'; choose one of: sequence, biaxial"):
        make_config("nade", {})
    with pytest.raises(ConfigError, match="takes no --head; its options: .*--window-semitones"):
        make_config("biaxial", {"head": "note-axis"})
    with pytest.raises(ConfigError, match="takes no --window-semitones"):
        make_config("sequence", {"window_semitones": 3})
    with pytest.raises(ConfigError, match="unknown head 'nade'"):
        make_config("sequence", {"head": "nade"})
    with pytest.raises(ConfigError, match="model kind 'transformer' is unknown"):
        config_from_dict({"kind": "transformer"})


@pytest.mark.parametrize("kind", ["sequence", "biaxial"])
def test_structured_models_learn_a_chord(kind):
    """Adam on one repeated chord makes it the likeliest frame."""
    torch.manual_seed(0)
    model = tiny_structured(kind).train()
    chord = torch.tensor([1.0, 0, 1, 1])
    frames = chord.expand(2, 6, -1).clone()
    batch = FrameBatch.from_frames(frames)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        log_lik, _ = model(batch)
        optimizer.zero_grad()
        (-log_lik.play.mean()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.predict(batch)[0, -1], chord.bool())
        assert model(batch)[0].play[0, -1].exp().item() > 0.8
