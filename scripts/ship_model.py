"""Copy a trained checkpoint into pretrained/ as a shipped model, with its model card.

    .venv/bin/python scripts/ship_model.py RUN_OR_CHECKPOINT DATA --name default \
        --description "..." --command "tuneforge train ..."

The weights are loaded (so a broken checkpoint is refused), written again without optimizer
state as pretrained/NAME.safetensors + NAME.json, and scored on the validation and test splits
of DATA for the card (pretrained/README.md describes the card).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tuneforge.checkpoint import load_checkpoint, save_checkpoint
from tuneforge.evaluate import evaluate_checkpoint
from tuneforge.models.registry import describe_model

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="run folder (its best checkpoint) or checkpoint file")
    parser.add_argument("data", help="the data it was trained on (folder, file or name)")
    parser.add_argument("--name", default="default")
    parser.add_argument("--description", required=True)
    parser.add_argument("--command", required=True, help="the command that trained it")
    args = parser.parse_args()

    loaded = load_checkpoint(args.checkpoint)
    meta = {k: v for k, v in loaded.meta.items() if k != "progress"}
    if "time_signatures" not in meta:  # trained before tuneforge recorded the data's meters
        from tuneforge.data.comparison import training_data_of
        from tuneforge.train import training_meters

        # DATA, read with the settings training used (split seed, percussion, octaves).
        meta["time_signatures"] = training_meters(
            training_data_of({**meta, "data_spec": args.data})
        )
    target = save_checkpoint(PRETRAINED / args.name, loaded.model, meta=meta)
    scores = {
        split: evaluate_checkpoint(target, args.data, split=split, device="cpu")
        for split in ("valid", "test")
    }
    card = {
        "description": args.description,
        "data": f"{meta.get('dataset', args.data)}, {meta.get('steps_per_beat')} steps per beat",
        "model": describe_model(loaded.config),
        "kind": loaded.config.kind,
        "cell": loaded.config.cell,
        "hidden_size": loaded.config.hidden_size,
        "num_layers": getattr(
            loaded.config, "num_layers", getattr(loaded.config, "time_layers", 1)
        ),
        "parameters": loaded.model.num_parameters(),
        "best_epoch": meta.get("metrics", {}).get("epoch", -1) + 1,  # counted from 1
        "valid_nll": round(scores["valid"].nll, 4),
        "test_nll": round(scores["test"].nll, 4),
        "test_frame_accuracy": round(scores["test"].frame_accuracy, 4),
        "test_articulation_nll": round(scores["test"].articulation_nll, 4),
        "scored_frames": scores["test"].scored_frames,
        "command": args.command,
    }
    if meta.get("parent"):
        card["parent"] = meta["parent"]  # a fine-tuned model names the model it started from
    card_path = PRETRAINED / f"{args.name}.card.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target}, {target.with_suffix('.json')} and {card_path}")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
