"""Offline rendering through FluidSynth and the SoundFont search."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.midi_factory import write_midi
from tuneforge.errors import PlaybackError
from tuneforge.playback.render import render_midi
from tuneforge.playback.soundfont import SOUNDFONT_ENV, SYSTEM_SOUNDFONTS, find_soundfont

# The small GM font loads in a fraction of the time of the big one; either will do.
SMALL_FIRST = (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), *SYSTEM_SOUNDFONTS)


@pytest.fixture
def soundfont() -> Path:
    try:
        return find_soundfont(environ={}, candidates=SMALL_FIRST)
    except PlaybackError as error:
        pytest.skip(f"no SoundFont on this machine: {error}")


def _wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)
    return rate, samples


def _sounding_span_s(samples: np.ndarray, rate: int) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)).max(axis=1) > 200)
    return loud[0] / rate, loud[-1] / rate


def test_a_rendered_file_lasts_as_long_as_the_piece_and_is_not_silent(tmp_path, soundfont):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 4), (64, 4, 8), (67, 8, 16), (48, 0, 16)])
    report = render_midi(midi, soundfont_path=soundfont, sample_rate_hz=22050, tail_s=0.5)
    assert report.path == tmp_path / "a.wav"
    rate, samples = _wav(report.path)
    # 16 steps at 4 per beat and 120 bpm = 2 s, plus the 0.5 s tail.
    assert rate == 22050
    assert len(samples) / rate == pytest.approx(2.5, abs=1e-3)
    assert report.duration_s == pytest.approx(2.5, abs=1e-3)
    start_s, end_s = _sounding_span_s(samples, rate)
    assert start_s < 0.05 and 1.9 < end_s <= 2.5
    assert report.rms > 0.005 and 0 < report.peak < 1


def test_tempo_changes_stretch_the_audio(tmp_path, soundfont):
    midi = write_midi(
        tmp_path / "slow.mid", [(60, 0, 4), (62, 4, 8)], tempo_changes=[(0, 120.0), (4, 60.0)]
    )
    out = tmp_path / "elsewhere.wav"
    report = render_midi(midi, out, soundfont_path=soundfont, tail_s=0.0)
    assert report.path == out
    assert report.duration_s == pytest.approx(0.5 + 1.0, abs=1e-3)


def test_silence_renders_as_silence(tmp_path, soundfont):
    midi = write_midi(tmp_path / "empty.mid", [], tempo_changes=[(0, 120.0)])
    report = render_midi(midi, soundfont_path=soundfont, tail_s=0.25)
    assert report.peak < 1e-3  # FluidSynth dithers: the last bit may flicker


def test_bad_settings_are_refused(tmp_path, soundfont):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 4)])
    with pytest.raises(PlaybackError, match="sample rate"):
        render_midi(midi, soundfont_path=soundfont, sample_rate_hz=100)
    with pytest.raises(PlaybackError, match="gain"):
        render_midi(midi, soundfont_path=soundfont, gain=0)
    (tmp_path / "fake.sf2").write_bytes(b"not a soundfont")
    with pytest.raises(PlaybackError, match="cannot load"):
        render_midi(midi, soundfont_path=tmp_path / "fake.sf2")


def test_the_option_wins_then_the_environment_then_the_system(tmp_path):
    chosen = tmp_path / "mine.sf2"
    chosen.write_bytes(b"x")
    from_env = tmp_path / "env.sf2"
    from_env.write_bytes(b"x")
    system = tmp_path / "system.sf2"
    system.write_bytes(b"x")
    environ = {SOUNDFONT_ENV: str(from_env)}
    assert find_soundfont(chosen, environ=environ, candidates=[system]) == chosen
    assert find_soundfont(None, environ=environ, candidates=[system]) == from_env
    assert find_soundfont(None, environ={}, candidates=[tmp_path / "no.sf2", system]) == system


def test_missing_soundfonts_say_how_to_get_one(tmp_path):
    with pytest.raises(PlaybackError, match="apt-get install fluid-soundfont-gm"):
        find_soundfont(None, environ={}, candidates=[tmp_path / "none.sf2"])
    with pytest.raises(PlaybackError, match="--soundfont"):
        find_soundfont(tmp_path / "typo.sf2", environ={})
    with pytest.raises(PlaybackError, match=SOUNDFONT_ENV):
        find_soundfont(None, environ={SOUNDFONT_ENV: str(tmp_path / "gone.sf2")})


def test_render_command_writes_the_wav(tmp_path, soundfont):
    from typer.testing import CliRunner

    from tuneforge.cli.app import app

    midi = write_midi(tmp_path / "a.mid", [(60, 0, 8)])
    out = tmp_path / "a-22k.wav"
    args = ["render", str(midi), "--out", str(out), "--soundfont", str(soundfont)]
    result = CliRunner().invoke(app, [*args, "--sample-rate", "22050", "--gain", "0.5"])
    assert result.exit_code == 0, result.output
    assert "real time" in result.output
    rate, samples = _wav(out)
    assert rate == 22050 and len(samples) / rate == pytest.approx(1.0 + 1.0, abs=1e-3)
    missing = CliRunner().invoke(app, ["render", str(midi), "--soundfont", str(tmp_path / "x.sf2")])
    assert missing.exit_code == 1 and "no SoundFont" in missing.output


def test_render_command_tail_option_sets_the_ring_out(tmp_path, soundfont):
    from typer.testing import CliRunner

    from tuneforge.cli.app import app

    midi = write_midi(tmp_path / "a.mid", [(60, 0, 8)])  # 8 steps at 4 per beat, 120 bpm: 1 s
    out = tmp_path / "a.wav"
    args = ["render", str(midi), "--out", str(out), "--soundfont", str(soundfont)]
    result = CliRunner().invoke(app, [*args, "--sample-rate", "22050", "--tail", "0"])
    assert result.exit_code == 0, result.output
    rate, samples = _wav(out)
    assert len(samples) / rate == pytest.approx(1.0, abs=1e-3)
