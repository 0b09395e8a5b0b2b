"""Score every MIDI file of a folder with a model and plot the result.

    python examples/score_folder.py [MIDI_FOLDER] [--model NAME_OR_RUN] [--out DIR]

Each piece is read on the model's time grid and scored frame by frame (frame t predicted from
the frames before it, as in training): its NLL in nats per frame, lower meaning the model finds
it likelier. Writes DIR/scores.json and DIR/scores.png (a bar per piece, and the
log-likelihood along the least likely piece).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tuneforge.evaluate import score_frames  # noqa: E402
from tuneforge.generate import load_generator  # noqa: E402
from tuneforge.music.meter import step_in_bar  # noqa: E402
from tuneforge.music.midi import read_midi  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(HERE / "tunes"), help="MIDI folder")
    parser.add_argument("--model", default=None, help="shipped name, run folder or checkpoint")
    parser.add_argument("--out", default="out/scores")
    args = parser.parse_args()

    generator = load_generator(args.model, device="cpu")
    steps_per_beat = generator.steps_per_beat
    scores = []
    for path in sorted(Path(args.folder).glob("*.mid")):
        piece = read_midi(path, steps_per_beat=steps_per_beat)
        bars = step_in_bar(piece.length_steps, steps_per_beat, piece.time_signatures)
        per_frame = score_frames(
            generator.model, piece.roll, onsets=piece.onsets, bar_positions=bars
        )  # log-likelihood of each frame in nats; frame 0 is NaN (never predicted)
        nll = -float(np.nanmean(per_frame))
        assert math.isfinite(nll)
        scores.append({"file": path.name, "nll_per_frame": nll, "frames": per_frame.tolist()})
        print(f"{path.name}: {nll:.3f} nats/frame over {piece.length_steps - 1} frames")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = [{"file": s["file"], "nll_per_frame": s["nll_per_frame"]} for s in scores]
    (out / "scores.json").write_text(json.dumps({"model": generator.name, "pieces": summary}))

    figure, (bars_axis, line_axis) = plt.subplots(2, 1, figsize=(9, 6), layout="constrained")
    names = [s["file"].removesuffix(".mid") for s in scores]
    bars_axis.bar(names, [s["nll_per_frame"] for s in scores], color="tab:blue")
    bars_axis.set_ylabel("NLL (nats / frame)")
    bars_axis.set_title(f"{Path(args.folder).name}/ under {generator.name}")
    bars_axis.tick_params(axis="x", labelrotation=45)
    worst = max(scores, key=lambda s: s["nll_per_frame"])
    frames = np.array(worst["frames"], dtype=float)
    beats = np.arange(len(frames)) / steps_per_beat
    line_axis.plot(beats, frames, lw=0.8, color="tab:red")
    line_axis.set_xlabel("beat")
    line_axis.set_ylabel("log-likelihood (nats)")
    line_axis.set_title(f"frame by frame: {worst['file']}, the least likely piece")
    figure.savefig(out / "scores.png", dpi=100)
    print(f"wrote {out / 'scores.json'} and {out / 'scores.png'}")


if __name__ == "__main__":
    main()
