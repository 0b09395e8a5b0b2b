"""Train a small model on a folder of MIDI files from Python.

    python examples/train_model.py [MIDI_FOLDER] [--epochs N] [--out RUN_FOLDER]

The library does what `tuneforge train` does, without the dashboard: load the folder (parsed
in parallel, cached, split 80/10/10 by piece), build a model from the model registry, train it
into a run folder (config.json, metrics.jsonl, best/last checkpoints, curves.png). With
TUNEFORGE_SMOKE=1 the training is one short epoch, which is how the tests run it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

from tuneforge.data.dataset import load_dataset
from tuneforge.models.registry import build_model, make_config
from tuneforge.train import TrainCallbacks, TrainConfig, train

HERE = Path(__file__).resolve().parent


class PrintEpochs(TrainCallbacks):
    """The library never prints; a callback can. This one prints a line per epoch."""

    def on_epoch(self, info) -> None:
        print(f"epoch {info.epoch + 1}: train {info.train_loss:.3f}, valid {info.valid_nll:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(HERE / "tunes"), help="MIDI folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/example-lstm", help="run folder")
    args = parser.parse_args()

    # 4 steps per beat: a sixteenth note per frame, the default of `tuneforge train`.
    dataset = load_dataset(args.data, steps_per_beat=4)
    print(f"{dataset.name}: {len(dataset.train)} train, {len(dataset.valid)} valid pieces")

    # A model is a config from the registry (the same option names as the command line) and
    # the data's time grid; build_model seeds its initial weights.
    config = make_config("sequence", {"cell": "lstm", "hidden_size": 64, "meter": True})
    config = replace(config, steps_per_beat=dataset.steps_per_beat)
    model = build_model(config, seed=0)

    # Every training choice in one dataclass; it is saved with the run.
    train_config = TrainConfig(epochs=args.epochs, batch_size=4, window_steps=64, threads=1)
    result = train(train_config, dataset, model=model, run_dir=args.out, callbacks=PrintEpochs())

    assert math.isfinite(result.best_valid_nll)
    print(f"best valid NLL {result.best_valid_nll:.3f} nats/frame at epoch {result.best_epoch + 1}")
    print(f"test NLL {result.test_nll:.3f}; {result.parameters:,} parameters; run in {args.out}")


if __name__ == "__main__":
    main()
