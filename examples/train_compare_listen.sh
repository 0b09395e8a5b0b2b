#!/usr/bin/env bash
# Train a model, compare two cells at one parameter budget, and listen to the trained model.
#
#   bash examples/train_compare_listen.sh [MIDI_FOLDER] [OUT_FOLDER]
#
# EPOCHS (default 10) sets the most epochs of every training; TUNEFORGE_SMOKE=1 makes each one
# short epoch, for a check that the script runs. Needs `tuneforge` on PATH
# (source .venv/bin/activate).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${1:-$here/tunes}"
out="${2:-runs/example-sh}"
epochs="${EPOCHS:-10}"

# 1. One model, quietly: the run folder gets checkpoints, metrics.jsonl and curves.png.
tuneforge train "$data" --cell gru --hidden-size 64 --epochs "$epochs" --out "$out/gru" --quiet

# 2. A bake-off: each cell sized to the same parameter count, trained alike, then ranked by
#    test NLL in $out/compare/report.md, with samples of each.
tuneforge compare "$data" --cells lstm,gru --params 40000 --epochs "$epochs" \
    --out "$out/compare"

# 3. Listen: sample 16 beats from the first model and render them to WAV (FluidSynth, offline).
tuneforge generate --model "$out/gru" --length 16 --seed 1 --render --out "$out/listen"
ls "$out"/listen/*.wav
