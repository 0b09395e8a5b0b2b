"""Ctrl-C while `generate` plays: wherever it lands, the whole piece is still written."""

from __future__ import annotations

import signal

import pytest

from tests.tiny_models import save_tiny
from tuneforge import generate as generate_module
from tuneforge.generate import Request, generate, load_generator
from tuneforge.music.midi import read_midi


@pytest.mark.parametrize("where", ["sampler", "consumer"])
def test_ctrl_c_during_a_played_generation_still_writes_the_whole_piece(
    where, tmp_path, monkeypatch
):
    generator = load_generator(str(save_tiny(tmp_path / "models", head_bias=-2.5)))
    real_stream = generate_module.sample_steps

    def stream_with_ctrl_c(*args, **kwargs):
        for index, step in enumerate(real_stream(*args, **kwargs)):
            if where == "sampler" and index == 5:
                signal.raise_signal(signal.SIGINT)  # lands while step 5 is being drawn
            yield step

    monkeypatch.setattr(generate_module, "sample_steps", stream_with_ctrl_c)
    played = []

    def consume(frames):
        for frame in frames:
            played.append(frame)
            if where == "consumer" and len(played) == 5:
                signal.raise_signal(signal.SIGINT)  # lands while frame 5 plays

    with pytest.raises(KeyboardInterrupt):
        generate(generator, Request(num_steps=32, seed=3), tmp_path / "out", consume=consume)
    assert len(played) == 5  # the interruption reached the player at once
    (written,) = (tmp_path / "out").glob("*.mid")
    roll = read_midi(written, steps_per_beat=4).roll
    assert roll.shape[0] == 32, roll.shape
