"""Meters of generated pieces: drawn from the training data's, written to the file, heard by
the model, and the same when the file is scored or read again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tuneforge.checkpoint import load_checkpoint, save_checkpoint
from tuneforge.cli.app import app
from tuneforge.evaluate import score_frames
from tuneforge.models import build_model
from tuneforge.models.sequence import ModelConfig
from tuneforge.music.meter import (
    draw_time_signatures,
    parse_time_signature,
    step_in_bar,
    time_signature_shares,
)
from tuneforge.music.midi import read_midi, roll_to_midi
from tuneforge.sample import SamplingOptions, sample_steps

runner = CliRunner()


def meter_model(seed: int = 0):
    """A small random sequence model that reads meter."""
    torch.manual_seed(seed)
    config = ModelConfig(hidden_size=16, head="note-axis", note_hidden_size=8, meter=True)
    model = build_model(config).eval()
    with torch.no_grad():
        model.head.bias.fill_(-2.0)
    return model


def save_meter_model(folder: Path, shares: dict[str, float] | None, *, meter: bool = True):
    torch.manual_seed(1)
    config = ModelConfig(hidden_size=12, head="note-axis", note_hidden_size=6, meter=meter)
    model = build_model(config).eval()
    with torch.no_grad():
        model.head.bias.fill_(-2.0)
    meta = {"steps_per_beat": 4, "lowest_pitch": 21}
    if shares is not None:
        meta["time_signatures"] = shares
    return save_checkpoint(folder / "metered", model, meta=meta)


@pytest.mark.parametrize(
    "text, meter", [("6/8", (6, 8)), (" 3/4 ", (3, 4)), ("4/4", (4, 4)), ("12/16", (12, 16))]
)
def test_time_signatures_parse(text, meter):
    assert parse_time_signature(text) == meter


@pytest.mark.parametrize("text", ["5/7", "0/4", "33/4", "6", "six/8", "3/4/4", "", "-3/4"])
def test_a_time_signature_midi_cannot_hold_is_refused_with_examples(text):
    with pytest.raises(ValueError, match="try 4/4, 3/4 or 6/8"):
        parse_time_signature(text)


def test_shares_count_each_piece_by_its_opening_meter():
    pieces = [((0, 6, 8),), (), ((0, 6, 8), (48, 3, 4)), ((0, 3, 4),)]
    assert time_signature_shares(pieces) == {"6/8": 0.5, "3/4": 0.25, "4/4": 0.25}
    assert time_signature_shares([]) == {"4/4": 1.0}


def test_meters_are_drawn_in_proportion_and_reproducibly():
    shares = {"4/4": 0.6, "6/8": 0.3, "3/4": 0.1, "bogus": 0.5}
    drawn = draw_time_signatures(shares, 3000, seed=7)
    assert drawn == draw_time_signatures(shares, 3000, seed=7)
    assert drawn != draw_time_signatures(shares, 3000, seed=8)
    counts = {meter: drawn.count(meter) / len(drawn) for meter in set(drawn)}
    assert set(counts) == {(4, 4), (6, 8), (3, 4)}  # the unparsable entry is left out
    assert counts[(4, 4)] == pytest.approx(0.6, abs=0.03)
    assert counts[(6, 8)] == pytest.approx(0.3, abs=0.03)
    assert draw_time_signatures({}, 2, seed=0) == [(4, 4), (4, 4)]


def test_a_written_time_signature_reads_back(tmp_path):
    roll = np.zeros((24, 88), np.uint8)
    roll[:6, 40] = 1
    path = roll_to_midi(roll, tmp_path / "jig.mid", time_signature=(6, 8))
    assert read_midi(path).time_signatures == ((0, 6, 8),)
    plain = roll_to_midi(roll, tmp_path / "plain.mid")
    assert read_midi(plain).time_signatures == ()


def test_each_piece_hears_its_own_meter_and_scores_as_drawn():
    model = meter_model()
    meters = [(4, 4), (6, 8)]
    steps = list(
        sample_steps(
            model,
            num_steps=40,
            batch_size=2,
            seed=3,
            time_signature=meters,
            options=SamplingOptions(temperature=1.0),
        )
    )
    for piece, meter in enumerate(meters):
        roll = torch.stack([s.frame[piece] for s in steps]).numpy()
        onsets = torch.stack([s.onsets[piece] for s in steps]).numpy()
        sampled = np.array([float(s.log_likelihood[piece]) for s in steps])
        bars = step_in_bar(len(roll), 4, [(0, *meter)])
        scored = score_frames(model, roll, onsets=onsets, bar_positions=bars)
        np.testing.assert_allclose(scored[1:], sampled[1:], rtol=1e-4, atol=1e-4)
        other = step_in_bar(len(roll), 4, [(0, 3, 2)])  # a 24-step bar: another meter
        assert not np.allclose(
            score_frames(model, roll, onsets=onsets, bar_positions=other)[1:],
            sampled[1:],
            atol=1e-4,
        )


def test_one_meter_for_the_wrong_number_of_pieces_is_refused():
    from tuneforge.errors import ConfigError

    with pytest.raises(ConfigError, match="2 time signatures for 3 pieces"):
        next(sample_steps(meter_model(), num_steps=4, batch_size=3, time_signature=[(4, 4)] * 2))


def _generate(*args: str):
    return runner.invoke(app, ["generate", *args])


def _meters(out: Path) -> list[str]:
    return [json.loads(p.read_text())["time_signature"] for p in sorted(out.glob("*.json"))]


def test_generate_draws_meters_from_the_training_data_and_writes_them(tmp_path):
    model = save_meter_model(tmp_path, {"6/8": 0.5, "4/4": 0.5})
    out = tmp_path / "out"
    result = _generate(
        "--model", str(model), "--num", "8", "--length", "12", "--seed", "2", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    meters = _meters(out)
    assert set(meters) == {"6/8", "4/4"}
    for midi, meter in zip(sorted(out.glob("*.mid")), meters, strict=True):
        numerator, denominator = parse_time_signature(meter)
        assert read_midi(midi).time_signatures == ((0, numerator, denominator),)
        scored = runner.invoke(app, ["score", str(midi), "--model", str(model), "--json"])
        assert scored.exit_code == 0, scored.output
        sidecar = json.loads(midi.with_suffix(".json").read_text())
        assert json.loads(scored.output)["log_likelihood"] == pytest.approx(
            sidecar["log_likelihood"], abs=1e-3
        )
    again = tmp_path / "again"
    _generate(
        "--model", str(model), "--num", "8", "--length", "12", "--seed", "2", "--out", str(again)
    )
    assert _meters(again) == meters  # the seed fixes the meters too


def test_the_meter_named_the_melody_s_and_a_model_without_meter(tmp_path):
    model = save_meter_model(tmp_path, {"6/8": 1.0})
    named = tmp_path / "named"
    result = _generate(
        "--model",
        str(model),
        "--num",
        "3",
        "--length",
        "6",
        "--time-signature",
        "3/4",
        "--out",
        str(named),
    )
    assert result.exit_code == 0, result.output
    assert _meters(named) == ["3/4"] * 3
    tune = write_midi(tmp_path / "tune.mid", [(72, 0, 4), (74, 4, 8)], time_signatures=[(0, 2, 4)])
    harmonized = tmp_path / "harmonized"
    result = _generate("--model", str(model), "--melody", str(tune), "--out", str(harmonized))
    assert result.exit_code == 0, result.output
    assert _meters(harmonized) == ["2/4"]
    deaf = save_meter_model(tmp_path / "deaf", {"6/8": 1.0}, meter=False)
    plain = tmp_path / "plain"
    result = _generate("--model", str(deaf), "--num", "2", "--length", "4", "--out", str(plain))
    assert result.exit_code == 0, result.output
    assert _meters(plain) == ["4/4", "4/4"]  # it never heard a meter: nothing else is claimed


def test_a_bad_time_signature_is_one_line_before_anything_is_written(tmp_path):
    model = save_meter_model(tmp_path, None)
    out = tmp_path / "out"
    result = _generate("--model", str(model), "--time-signature", "5/7", "--out", str(out))
    assert result.exit_code == 1
    assert "--time-signature" in result.output and "try 4/4" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_checkpoint_with_broken_meter_shares_is_a_one_line_error(tmp_path):
    model = save_meter_model(tmp_path, {"6/8": 1.0})
    sidecar = model.with_suffix(".json")
    document = json.loads(sidecar.read_text())
    document["meta"]["time_signatures"] = {"6/8": "often"}
    sidecar.write_text(json.dumps(document))
    result = _generate("--model", str(model), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "meta.time_signatures.6/8" in result.output


def test_training_on_a_folder_records_its_meters(tmp_path, monkeypatch):
    folder = tmp_path / "midis"
    folder.mkdir()
    notes = [(60 + k % 5, 2 * k, 2 * k + 2) for k in range(24)]
    for index in range(10):
        meter = [(0, 6, 8)] if index % 2 else [(0, 3, 4)] if index == 4 else []
        write_midi(folder / f"tune{index}.mid", notes, time_signatures=meter)
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", str(folder), "--out", str(out), "--epochs", "1", "--hidden-size", "8"]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--window", "16", "-q"])
    assert result.exit_code == 0, result.output
    shares = load_checkpoint(out).meta["time_signatures"]
    assert set(shares) <= {"6/8", "3/4", "4/4"} and "6/8" in shares
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
