"""Train several cells on a benchmark set at one parameter budget; report test NLL.

For each cell the hidden size is the largest that fits ``--params``; the model is trained with
early stopping on validation NLL, and the test NLL is that of the best validation epoch
(frames 2..T of each whole test piece, nats per frame). Prints a table and writes JSON.

    python benchmarks/nll.py --data jsb --data-dir ../shared/data/benchmarks \
        --cells lstm,gru,rru --params 1000000 --cell-option rru_dropout=0.6

``--cell-option KEY=VALUE`` goes to every cell of the list that has that option.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tuneforge.cells import CELLS, resolve_cell
from tuneforge.cells.registry import cell_options
from tuneforge.data.dataset import load_dataset
from tuneforge.evaluate import SCORED_FRAMES
from tuneforge.models.budget import hidden_size_for_budget
from tuneforge.train import TrainCallbacks, TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results" / "nll.json"


class _EpochLine(TrainCallbacks):
    """One line per epoch on stderr, so a long sweep shows it is alive."""

    def __init__(self, cell: str) -> None:
        self.cell = cell

    def on_epoch(self, info) -> None:
        print(
            f"{self.cell} epoch {info.epoch + 1}: train {info.train_loss:.3f} "
            f"valid {info.valid_nll:.3f} (best {info.best_valid_nll:.3f}) {info.epoch_s:.1f}s",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep described by ``argv``; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="jsb", help="benchmark name, file or MIDI folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder of benchmark files")
    parser.add_argument("--cells", default="lstm,gru", help="comma-separated cell names")
    parser.add_argument("--params", type=int, default=1_000_000, help="parameter budget")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--dropout", type=float, default=TrainConfig.dropout)
    parser.add_argument("--transpose", type=int, default=0, help="augmentation, +-semitones")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/nll-benchmark"))
    parser.add_argument(
        "--cell-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option for the cells that have it (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="write the results here")
    args = parser.parse_args(argv)
    given = dict(option.split("=", 1) for option in args.cell_option)

    dataset = load_dataset(args.data, data_dir=args.data_dir)
    rows = []
    for cell in [name.strip() for name in args.cells.split(",") if name.strip()]:
        known = CELLS[resolve_cell(cell)].options
        options = cell_options(cell, {k: v for k, v in given.items() if k in known})
        hidden_size = hidden_size_for_budget(
            cell, args.params, num_layers=args.layers, dropout=args.dropout, cell_options=options
        )
        config = TrainConfig(
            cell=cell,
            hidden_size=hidden_size,
            cell_options=options,
            num_layers=args.layers,
            dropout=args.dropout,
            lr=args.lr,
            batch_size=args.batch_size,
            epochs=args.epochs,
            patience=args.patience,
            transpose_semitones=args.transpose,
            seed=args.seed,
            threads=args.threads,
            device="cpu",
        )
        run_dir = args.out / f"{dataset.name}-{cell}-{args.params}-{time.strftime('%H%M%S')}"
        result = train(config, dataset, run_dir=run_dir, callbacks=_EpochLine(cell))
        rows.append(
            {
                "cell": cell,
                "cell_options": options,
                "hidden_size": hidden_size,
                "parameters": result.parameters,
                "test_nll": result.test_nll,
                "test_frame_accuracy": result.test_accuracy,
                "best_valid_nll": result.best_valid_nll,
                "best_epoch": result.best_epoch + 1,
                "epochs_run": len(result.history),
                "seconds_per_epoch": result.seconds_per_epoch,
                "run_dir": str(run_dir),
            }
        )
    report = {
        "dataset": dataset.name,
        "budget_params": args.params,
        "scored_frames": SCORED_FRAMES,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "results": rows,
    }
    table = Table(title=f"{dataset.name}: test NLL at the best validation epoch ({SCORED_FRAMES})")
    for column in (
        "cell",
        "hidden",
        "parameters",
        "test NLL",
        "valid NLL",
        "best epoch",
        "s/epoch",
    ):
        table.add_column(column, justify="left" if column == "cell" else "right")
    for row in rows:
        table.add_row(
            row["cell"],
            str(row["hidden_size"]),
            f"{row['parameters']:,}",
            f"{row['test_nll']:.3f}",
            f"{row['best_valid_nll']:.3f}",
            str(row["best_epoch"]),
            f"{row['seconds_per_epoch']:.1f}",
        )
    Console().print(table)
    text = json.dumps(report, indent=2)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
