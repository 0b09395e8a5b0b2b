"""Register a recurrent cell of your own and train a model with it.

    python examples/custom_cell.py [MIDI_FOLDER] [--epochs N] [--out RUN_FOLDER]

The cell is the Minimal Gated Unit (Zhou, Wu, Zhang and Zhou 2016, "Minimal gated unit for
recurrent neural networks"): one forget gate f does the work of the GRU's two gates,

    f  = sigmoid(W_f x + U_f h + b_f)
    h~ = tanh(W_h x + U_h (f * h) + b_h)
    h' = (1 - f) * h + f * h~

Once registered under a name, the cell is a cell like the built-in ones: models, training,
parameter budgets and checkpoints name it. A checkpoint of it loads in a process that has
registered it again (import this module, then load).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from tuneforge.cells import RecurrentLayer, count_parameters
from tuneforge.cells.registry import CELLS, CellInfo, register_cell
from tuneforge.data.dataset import load_dataset
from tuneforge.models.registry import build_model, make_config
from tuneforge.train import TrainConfig, train

HERE = Path(__file__).resolve().parent


class MGULayer(RecurrentLayer):
    """One MGU layer: (B, T, input_size) -> (B, T, hidden_size); its state is ``(h,)``."""

    def __init__(self, input_size: int, hidden_size: int, *, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.input_weights = nn.Linear(input_size, 2 * hidden_size)  # W_f, W_h and both biases
        self.forget_recurrent = nn.Linear(hidden_size, hidden_size, bias=False)  # U_f
        self.candidate_recurrent = nn.Linear(hidden_size, hidden_size, bias=False)  # U_h
        with torch.no_grad():
            self.input_weights.bias[:hidden_size].fill_(forget_bias)

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, ...]:
        return (like.new_zeros(batch_size, self.hidden_size),)

    def forward(self, x: Tensor, state: tuple[Tensor, ...] | None = None):
        (h,) = state if state is not None else self.initial_state(x.shape[0], x)
        forget_in, candidate_in = self.input_weights(x).chunk(2, dim=-1)  # all steps at once
        outputs = []
        for t in range(x.shape[1]):
            f = torch.sigmoid(forget_in[:, t] + self.forget_recurrent(h))
            candidate = torch.tanh(candidate_in[:, t] + self.candidate_recurrent(f * h))
            h = (1 - f) * h + f * candidate
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h,)


def register() -> None:
    """Put the MGU in the cell registry under the name ``mgu`` (once per process)."""
    if "mgu" in CELLS:
        return
    register_cell(
        CellInfo(
            name="mgu",
            description="Minimal Gated Unit: one forget gate, h' = (1 - f) h + f h~",
            paper="Zhou et al. 2016, Minimal gated unit for recurrent neural networks",
            options={"forget_bias": 1.0},  # the default gives the option's type
            fused=False,  # a loop over time, not one of torch's fused kernels
            factory=f"{__name__}:MGULayer",  # "module:Class", imported when a layer is built
            option_help={"forget_bias": "initial bias of the forget gate"},
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(HERE / "tunes"), help="MIDI folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/example-mgu", help="run folder")
    args = parser.parse_args()

    register()
    print(f"cells now: {', '.join(CELLS)}")
    for name in ("mgu", "gru"):
        size = count_parameters(name, input_size=88, hidden_size=64)
        print(f"{name}: {size:,} parameters at 88 inputs, 64 units")

    dataset = load_dataset(args.data, steps_per_beat=4)
    config = make_config("sequence", {"cell": "mgu", "hidden_size": 64, "layers": 2})
    config = replace(config, steps_per_beat=dataset.steps_per_beat)
    model = build_model(config, seed=0)
    train_config = TrainConfig(epochs=args.epochs, batch_size=4, window_steps=64, threads=1)
    result = train(train_config, dataset, model=model, run_dir=args.out)
    assert math.isfinite(result.best_valid_nll)
    print(
        f"mgu: best valid NLL {result.best_valid_nll:.3f} nats/frame at epoch "
        f"{result.best_epoch + 1}, test NLL {result.test_nll:.3f}; run in {args.out}"
    )


if __name__ == "__main__":
    main()
