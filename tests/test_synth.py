"""The built-in synthesizer: raw bytes to FluidSynth calls, driver choice, and `play --synth`
recorded through FluidSynth's file driver (which writes in real time, like a sound card)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tuneforge.cli.app import app
from tuneforge.errors import PlaybackError
from tuneforge.music.events import read_events
from tuneforge.playback import synth as synth_module
from tuneforge.playback.fluid import apply_raw
from tuneforge.playback.soundfont import SOUNDFONT_ENV, SYSTEM_SOUNDFONTS, find_soundfont

runner = CliRunner()
SMALL_FIRST = (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), *SYSTEM_SOUNDFONTS)
LOUD = 200  # a sample above this (of 32767) is sound, below it the noise floor of silence


@pytest.fixture
def soundfont(monkeypatch) -> Path:
    try:
        path = find_soundfont(environ={}, candidates=SMALL_FIRST)
    except PlaybackError as error:
        pytest.skip(f"no SoundFont on this machine: {error}")
    monkeypatch.setenv(SOUNDFONT_ENV, str(path))  # the small font loads fastest
    return path


class _FakeSynth:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_raw_messages_become_the_matching_synth_calls():
    synth = _FakeSynth()
    for data in (
        [0x91, 60, 100],  # note on, channel 2
        [0x91, 60, 0],  # note on with velocity 0 is a note off
        [0x80, 62, 64],
        [0xB0, 64, 127],
        [0xC3, 40],
        [0xE0, 0, 64],  # pitch bend centre
        [0xE0, 127, 127],  # pitch bend top
        [0xD0, 10],  # channel pressure: ignored
        [0xF8],  # clock: ignored
    ):
        apply_raw(synth, data)
    assert synth.calls == [
        ("noteon", 1, 60, 100),
        ("noteoff", 1, 60),
        ("noteoff", 0, 62),
        ("cc", 0, 64, 127),
        ("program_change", 3, 40),
        ("pitch_bend", 0, 0),
        ("pitch_bend", 0, 8191),
    ]


def test_no_usable_driver_names_each_one_and_the_ways_without_a_device(soundfont, monkeypatch):
    monkeypatch.setattr(synth_module, "AUDIO_DRIVERS", ("nosuchdriver", "othermissing"))
    with pytest.raises(PlaybackError) as caught:
        synth_module.open_synth(soundfont)
    message = str(caught.value)
    assert "tried nosuchdriver (not in this FluidSynth build), othermissing (" in message
    assert "--audio-file" in message and "tuneforge render" in message


def test_a_forced_driver_is_the_only_one_tried(soundfont):
    with pytest.raises(PlaybackError, match=r"tried nosuchdriver \(not in this FluidSynth"):
        synth_module.open_synth(soundfont, audio_driver="nosuchdriver")


def _read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return rate, np.abs(samples.reshape(-1, channels).astype(np.int32)).max(axis=1)


def test_play_synth_records_the_whole_piece(soundfont, tmp_path):
    notes = [(60, 0, 4), (64, 4, 8), (67, 8, 12), (72, 12, 16), (48, 0, 16)]
    midi = write_midi(tmp_path / "piece.mid", notes)  # 2.0 s at 120 bpm
    duration_s = read_events(midi).duration_s
    wav_path = tmp_path / "out.wav"
    result = runner.invoke(app, ["play", str(midi), "--synth", "--audio-file", str(wav_path)])
    assert result.exit_code == 0, result.output
    assert "built-in synth" in result.output
    rate, peaks = _read_wav(wav_path)
    loud = np.flatnonzero(peaks > LOUD)
    assert loud.size, "the synth recorded silence"
    rms = float(np.sqrt(np.mean(peaks.astype(np.float64) ** 2))) / 32768
    assert rms > 0.01
    # The file driver writes in real time: the file lasts the piece plus the release tail.
    # Margins are wide because a loaded machine may let the driver's timer fall behind.
    total_s = len(peaks) / rate
    assert duration_s + synth_module.RELEASE_TAIL_S - 0.5 <= total_s
    assert total_s <= duration_s + synth_module.RELEASE_TAIL_S + 1.0
    sounding_s = (loud[-1] - loud[0]) / rate
    assert duration_s - 0.3 <= sounding_s <= duration_s + synth_module.RELEASE_TAIL_S


def test_ctrl_c_leaves_a_wav_that_ends_in_silence(soundfont, tmp_path):
    # Chords held for 8 s: SIGINT lands while they sound.
    notes = [(48, 0, 64), (60, 0, 32), (64, 8, 64), (67, 16, 64)]
    midi = write_midi(tmp_path / "long.mid", notes)
    wav_path = tmp_path / "cut.wav"
    command = [sys.executable, "-m", "tuneforge", "play", str(midi), "--synth"]
    command += ["--audio-file", str(wav_path)]
    player = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        # 1.5 s of 16-bit stereo written means the notes are sounding.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and player.poll() is None:
            if wav_path.exists() and wav_path.stat().st_size > 44 + 1.5 * 44100 * 4:
                break
            time.sleep(0.05)
        assert player.poll() is None, player.communicate()
        player.send_signal(signal.SIGINT)
        stdout, stderr = player.communicate(timeout=30)
    finally:
        if player.poll() is None:
            player.kill()
            player.communicate()
    assert player.returncode == 130, stderr
    assert "stopped" in stdout
    rate, peaks = _read_wav(wav_path)
    assert (peaks[:rate] > LOUD).any(), "nothing sounded before Ctrl-C"
    assert len(peaks) / rate < 6.0  # it stopped well before the 8 s piece ended
    last = peaks[-rate // 2 :]
    assert last.max() <= LOUD, f"a note still sounds at the end (peak {last.max()})"


def test_play_falls_back_to_the_synth_when_no_port_exists(soundfont, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "tuneforge-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    # The file driver stands in for the audio output; it writes fluidsynth.wav by default.
    monkeypatch.setattr(synth_module, "AUDIO_DRIVERS", ("file",))
    monkeypatch.chdir(tmp_path)
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 2)])
    result = runner.invoke(app, ["play", str(midi), "--api", "jack"])
    assert result.exit_code == 0, result.output
    assert "no MIDI output port found; playing through the built-in synth" in result.output
    assert (tmp_path / "fluidsynth.wav").stat().st_size > 44


def test_no_port_and_no_audio_driver_is_one_line_and_exit_1(soundfont, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "tuneforge-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    monkeypatch.setattr(synth_module, "AUDIO_DRIVERS", ("nosuchdriver",))
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 2)])
    result = runner.invoke(app, ["play", str(midi), "--api", "jack"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "found no MIDI output port, and no audio driver usable here" in line
    assert "nosuchdriver" in line and "--audio-file" in line and "tuneforge render" in line


def test_synth_and_a_port_together_are_refused(tmp_path):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 2)])
    result = runner.invoke(app, ["play", str(midi), "--synth", "--port", "x"])
    assert result.exit_code == 1
    assert "not both" in result.output


def test_generate_play_synth_records_what_it_samples(soundfont, tmp_path, monkeypatch):
    from tests.tiny_models import save_tiny
    from tuneforge.shipped import PRETRAINED_DIR_ENV

    save_tiny(tmp_path / "models", "default", head_bias=-2.5)  # a few notes per step
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(tmp_path / "models"))
    wav_path = tmp_path / "heard.wav"
    args = ["generate", "--steps", "16", "--tempo", "240", "--seed", "4", "--play", "--synth"]
    args += ["--audio-file", str(wav_path), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rate, peaks = _read_wav(wav_path)
    assert (peaks > LOUD).any(), "the synth recorded silence"
    # 16 steps at 240 bpm last 1 s; the release tail comes on top.
    assert 1.0 + synth_module.RELEASE_TAIL_S - 0.5 <= len(peaks) / rate <= 4.0
