"""The training loop on tiny synthetic rolls: learning, run folder, resume, NaN, budgets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from tuneforge.checkpoint import load_checkpoint
from tuneforge.errors import ConfigError, TrainingError
from tuneforge.models import build_model
from tuneforge.models.budget import count_model_parameters, hidden_size_for_budget
from tuneforge.models.sequence import ModelConfig
from tuneforge.train import TrainCallbacks, TrainConfig, train


@dataclass
class TinyDataset:
    """Stands in for tuneforge.data.dataset.Dataset: rolls and the fields train() reads."""

    train: list
    valid: list
    test: list
    name: str = "tiny"
    steps_per_beat: int = 4
    fingerprint: str = "tiny-fingerprint"
    report: None = None
    extra: dict = field(default_factory=dict)


def arpeggio_rolls(count: int, seed: int, length_range=(20, 60)) -> list[np.ndarray]:
    """Pieces that cycle a four-note arpeggio over a held bass: easy to learn, not trivial."""
    rng = np.random.default_rng(seed)
    rolls = []
    for _ in range(count):
        length = int(rng.integers(*length_range))
        root = int(rng.integers(20, 50))
        roll = np.zeros((length, 88), dtype=np.uint8)
        for step in range(length):
            roll[step, root + (0, 4, 7, 12)[step % 4]] = 1
            roll[step, root - 12] = 1
        rolls.append(roll)
    return rolls


def tiny_dataset(seed: int = 0) -> TinyDataset:
    """Ten training pieces, three for validation, three for test."""
    return TinyDataset(
        train=arpeggio_rolls(10, seed),
        valid=arpeggio_rolls(3, seed + 1),
        test=arpeggio_rolls(3, seed + 2),
    )


MODEL_FIELDS = ("hidden_size", "dropout", "cell", "head", "articulation", "meter")


def tiny_config(**changes) -> tuple[TrainConfig, ModelConfig]:
    """A training config and a model that train in well under a second."""
    base = dict(
        hidden_size=16,
        epochs=3,
        batch_size=4,
        window_steps=16,
        dropout=0.0,
        lr=1e-2,
        device="cpu",
        eval_batch_size=8,
        threads=1,  # the test machine's cores are shared; one thread is faster there
    )
    merged = {**base, **changes}
    model = {key: merged.pop(key) for key in MODEL_FIELDS if key in merged}
    return TrainConfig(**merged), ModelConfig(**model)


def fit(configs: tuple[TrainConfig, ModelConfig], dataset, **options):
    """train() with the model the configs describe, built from the training seed."""
    train_config, model_config = configs
    model = build_model(model_config, seed=train_config.seed)
    return train(train_config, dataset, model=model, **options)


class Recorder(TrainCallbacks):
    """Keeps every callback for inspection."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.steps = []

    def on_start(self, info) -> None:
        self.events.append("start")
        self.info = info

    def on_step(self, info) -> None:
        self.steps.append(info)

    def on_epoch(self, info) -> None:
        self.events.append(f"epoch{info.epoch}")

    def on_end(self, result) -> None:
        self.events.append("end")


def test_training_learns_and_fills_the_run_folder(tmp_path):
    recorder = Recorder()
    result = fit(tiny_config(epochs=4), tiny_dataset(), run_dir=tmp_path, callbacks=recorder)
    losses = [entry.valid_nll for entry in result.history]
    assert losses[-1] < losses[0] * 0.8, losses
    assert recorder.events == ["start", "epoch0", "epoch1", "epoch2", "epoch3", "end"]
    assert recorder.info.parameters == result.parameters > 0
    assert recorder.info.steps_per_epoch * 4 == len(recorder.steps)
    assert recorder.steps and all(step.grad_norm > 0 for step in recorder.steps)
    assert {"config.json", "metrics.jsonl", "curves.png", "best.json", "last.json"} <= {
        path.name for path in tmp_path.iterdir()
    }
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]  # counted from 1
    best = load_checkpoint(tmp_path)
    assert best.meta["data_fingerprint"] == "tiny-fingerprint"
    assert best.meta["steps_per_beat"] == 4
    assert best.meta["metrics"]["valid_nll"] == pytest.approx(result.best_valid_nll)
    assert result.test_nll is not None and np.isfinite(result.test_nll)
    assert result.test_frames == sum(len(roll) - 1 for roll in tiny_dataset().test)


def test_resuming_a_finished_part_gives_the_uninterrupted_run(tmp_path):
    whole = fit(
        tiny_config(epochs=4, dropout=0.3, transpose_semitones=2),
        tiny_dataset(),
        run_dir=tmp_path / "whole",
    )
    fit(
        tiny_config(epochs=2, dropout=0.3, transpose_semitones=2),
        tiny_dataset(),
        run_dir=tmp_path / "part",
    )
    resumed = fit(
        tiny_config(epochs=4, dropout=0.3, transpose_semitones=2),
        tiny_dataset(),
        run_dir=tmp_path / "part",
        resume=True,
    )
    assert [e.valid_nll for e in resumed.history] == [e.valid_nll for e in whole.history]
    assert resumed.test_nll == whole.test_nll


def test_an_existing_run_needs_resume(tmp_path):
    fit(tiny_config(epochs=1), tiny_dataset(), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="--resume"):
        fit(tiny_config(epochs=1), tiny_dataset(), run_dir=tmp_path)
    other = tiny_dataset()
    other.fingerprint = "other-data"
    with pytest.raises(ConfigError, match="other data"):
        fit(tiny_config(epochs=2), other, run_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="same hidden_size"):
        fit(tiny_config(epochs=2, hidden_size=17), tiny_dataset(), run_dir=tmp_path, resume=True)


class Poisoner(TrainCallbacks):
    """Turns one weight into NaN after the first step of epoch 2, as a diverging run would."""

    def __init__(self) -> None:
        self.model = None

    def on_step(self, info) -> None:
        if info.epoch == 1 and info.step == 1:
            parameter = next(self.model.parameters())
            with torch.no_grad():
                parameter.view(-1)[0] = float("nan")


def test_a_diverging_loss_stops_with_advice_and_keeps_a_good_checkpoint(tmp_path):
    poisoner = Poisoner()
    train_config, model_config = tiny_config(epochs=3)
    poisoner.model = build_model(model_config, seed=0)
    with pytest.raises(TrainingError, match="--lr") as caught:
        train(
            train_config,
            tiny_dataset(),
            model=poisoner.model,
            run_dir=tmp_path,
            callbacks=poisoner,
        )
    assert "--clip" in str(caught.value) and "epoch 2" in str(caught.value)
    last = load_checkpoint(tmp_path / "last")
    assert last.meta["progress"]["epoch"] == 1  # the state after the one good epoch
    assert all(torch.isfinite(t).all() for t in last.model.state_dict().values())


def test_carrying_state_trains_deterministically(tmp_path):
    config = tiny_config(epochs=2, carry_state=True, window_steps=8)
    first = fit(config, tiny_dataset(), run_dir=tmp_path / "a")
    second = fit(config, tiny_dataset(), run_dir=tmp_path / "b")
    assert [e.valid_nll for e in first.history] == [e.valid_nll for e in second.history]
    assert first.history[-1].valid_nll < first.history[0].valid_nll


@pytest.mark.parametrize("optimizer", ["rmsprop", "radam", "adagrad"])
def test_every_optimizer_trains(tmp_path, optimizer):
    result = fit(tiny_config(epochs=2, optimizer=optimizer), tiny_dataset(), run_dir=tmp_path)
    assert np.isfinite(result.best_valid_nll)


def test_bad_config_is_rejected_before_training(tmp_path):
    with pytest.raises(ConfigError, match="optimizer"):
        fit(tiny_config(optimizer="lbfgs"), tiny_dataset(), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="valid"):
        fit(
            tiny_config(),
            TinyDataset(train=arpeggio_rolls(2, 0), valid=[], test=[]),
            run_dir=tmp_path,
        )


@pytest.mark.parametrize("cell,budget", [("lstm", 1_000_000), ("gru", 50_000), ("rnn", 20_000)])
def test_hidden_size_for_budget_is_the_largest_that_fits(cell, budget):
    hidden_size = hidden_size_for_budget(cell, budget)

    def count(size: int) -> int:
        return count_model_parameters(ModelConfig(cell=cell, hidden_size=size))

    assert count(hidden_size) <= budget < count(hidden_size + 1)


def test_an_impossible_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="--params"):
        hidden_size_for_budget("lstm", 100)


def test_a_time_budget_stops_at_the_first_epoch_boundary_past_it(tmp_path):
    result = fit(tiny_config(epochs=5, time_budget_s=1e-9), tiny_dataset(), run_dir=tmp_path)
    # The budget is checked before each epoch: the first runs, the second finds it spent.
    assert len(result.history) == 1 and result.stopped == "time budget"
    assert result.test_nll is not None and (tmp_path / "best.json").is_file()
    unlimited = fit(tiny_config(epochs=2), tiny_dataset(), run_dir=tmp_path / "unlimited")
    assert unlimited.stopped == "epochs" and len(unlimited.history) == 2
    with pytest.raises(ConfigError, match="time budget"):
        fit(tiny_config(time_budget_s=-1.0), tiny_dataset(), run_dir=tmp_path / "bad")


def test_ctrl_c_while_the_epochs_files_are_written_waits_for_them(tmp_path, monkeypatch):
    # A signal inside a C extension's import (matplotlib's, on the first plot) surfaced as an
    # ImportError and a traceback; now it waits, and the run stops with its files whole.
    import signal

    from tuneforge import curves
    from tuneforge.train import TrainingInterrupted

    real_plot = curves.plot_curves

    def plot_hit_by_ctrl_c(history, path):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt as error:  # as a C module's initialisation reports it
            raise ImportError("initialization failed") from error
        real_plot(history, path)

    monkeypatch.setattr(curves, "plot_curves", plot_hit_by_ctrl_c)
    with pytest.raises(TrainingInterrupted):
        fit(tiny_config(epochs=3), tiny_dataset(), run_dir=tmp_path)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(tmp_path / "last").meta["progress"]["epoch"] == 1
