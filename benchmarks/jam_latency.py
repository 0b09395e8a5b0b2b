"""Jam latency: how soon the model answers a call, and how punctually it accompanies.

Runs :class:`tuneforge.jam.JamSession` in real time on the monotonic clock with the shipped
model (or --model), the player's notes fed in by this script and the output recorded:

* response latency, over ``--calls`` calls: from the end of the call (the moment the pause
  is complete and the answer is due) to the first note of the answer sent;
* accompaniment timing error over ``--bars`` bars: how late each step's notes were sent
  after the step's planned time.

Prints a table and writes benchmarks/results/jam_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tuneforge.generate import load_generator
from tuneforge.jam import JamSession, JamSettings, check_model

RESULTS = Path(__file__).resolve().parent / "results" / "jam_latency.json"


class _Sink:
    """An output that keeps nothing: the benchmark measures the session, not a port."""

    api = "benchmark"
    port_name = "none"

    def send(self, data) -> None:
        pass

    def close(self) -> None:
        pass


def _run(session: JamSession, feed: list[tuple[float, list[int]]], end_s: float) -> None:
    """Feed (monotonic time, message) pairs at their times and advance the session in real
    time, as `tuneforge jam` does."""
    pending = sorted(feed, key=lambda item: item[0])
    while time.monotonic() < end_s and not session.finished:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            session.player_message(pending.pop(0)[1])
        session.advance()
        due = session.next_due_s()
        if pending:
            due = min(due, pending[0][0])
        time.sleep(max(0.0, min(0.002, due - time.monotonic())))


def measure_calls(generator, calls: int, tempo_bpm: float) -> list[float]:
    """Latency in seconds of each of ``calls`` answers."""
    settings = JamSettings(tempo_bpm=tempo_bpm, pause_beats=1, answer_bars=1, seed=1)
    session = JamSession(generator, _Sink(), settings)
    beat_s = 60.0 / tempo_bpm
    cycle_s = 4 * beat_s + 1 * beat_s + 4 * beat_s + 2 * beat_s  # call, pause, answer, spare
    start = time.monotonic() + 0.2
    feed = []
    for call in range(calls):
        at = start + call * cycle_s
        for index, note in enumerate((60, 64, 67, 72, 67, 64, 62, 60)):
            feed.append((at + index * beat_s / 2, [0x90, note + call % 5, 90]))
            feed.append((at + (index + 0.8) * beat_s / 2, [0x80, note + call % 5, 0]))
    _run(session, feed, start + (calls + 1) * cycle_s)
    session.stop()
    return [a.first_note_s - a.call_end_s for a in session.report.answers if a.first_note_s]


def measure_accompaniment(generator, bars: int, tempo_bpm: float) -> list[float]:
    """Lateness in seconds of each step of ``bars`` bars of accompaniment."""
    settings = JamSettings(mode="accompany", tempo_bpm=tempo_bpm, bars=bars, seed=1)
    session = JamSession(generator, _Sink(), settings)
    beat_s = 60.0 / tempo_bpm
    feed = []
    for index in range(bars * 4):
        note = (72, 74, 76, 77, 79, 77, 76, 74)[index % 8]
        feed.append((session.start_s + index * beat_s, [0x90, note, 90]))
        feed.append((session.start_s + (index + 0.9) * beat_s, [0x80, note, 0]))
    _run(session, feed, session.start_s + bars * 4 * beat_s + 1.0)
    session.stop()
    return session.report.step_late_s


def _stats_ms(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000
    return {
        "median_ms": float(np.median(array)),
        "p95_ms": float(np.percentile(array, 95)),
        "worst_ms": float(array.max()),
        "count": int(array.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint or shipped name")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--tempo", type=float, default=120.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = load_generator(args.model)
    # As `tuneforge jam` does before it starts: the model is tried (and warmed up) once.
    check_model(generator, "call")
    check_model(generator, "accompany")
    latency = _stats_ms(measure_calls(generator, args.calls, args.tempo))
    timing = _stats_ms(measure_accompaniment(generator, args.bars, args.tempo))
    print(f"model {generator.name}, {args.tempo:g} bpm, {generator.steps_per_beat} steps per beat")
    print(f"{'measure':<36} {'median ms':>10} {'p95 ms':>8} {'worst ms':>9} {'n':>5}")
    rows = [
        ("response latency (call end -> note)", latency),
        ("accompaniment lateness per step", timing),
    ]
    for name, row in rows:
        print(
            f"{name:<36} {row['median_ms']:>10.2f} {row['p95_ms']:>8.2f}"
            f" {row['worst_ms']:>9.2f} {row['count']:>5}"
        )
    document = {
        "model": generator.name,
        "tempo_bpm": args.tempo,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "response_latency": latency,
        "accompaniment_lateness": timing,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
