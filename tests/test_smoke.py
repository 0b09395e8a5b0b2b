"""TUNEFORGE_SMOKE=1: every training one short epoch, said so in the saved config."""

from __future__ import annotations

import json

import pytest

from tests.test_train import Recorder, fit, tiny_config, tiny_dataset
from tuneforge.smoke import SMOKE_BATCHES, SMOKE_ENV, SMOKE_WINDOW_STEPS


@pytest.mark.parametrize("value", ["", "0"])
def test_training_is_untouched_without_smoke(value, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv(SMOKE_ENV, value)
    recorder = Recorder()
    result = fit(
        tiny_config(epochs=2, window_steps=24), tiny_dataset(), run_dir=tmp_path, callbacks=recorder
    )
    assert len(result.history) == 2
    assert max(step.steps for step in recorder.steps) > SMOKE_BATCHES


def test_smoke_size_trains_one_short_epoch(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv(SMOKE_ENV, "1")
    recorder = Recorder()
    result = fit(
        tiny_config(epochs=5, window_steps=24), tiny_dataset(), run_dir=tmp_path, callbacks=recorder
    )
    assert len(result.history) == 1 and recorder.events == ["start", "epoch0", "end"]
    assert len(recorder.steps) == SMOKE_BATCHES
    saved = json.loads((tmp_path / "config.json").read_text())["train_config"]
    assert saved["epochs"] == 1 and saved["window_steps"] == SMOKE_WINDOW_STEPS
    assert result.test_frames > 0  # the test split is still scored, on fewer pieces
