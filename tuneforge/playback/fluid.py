"""FluidSynth in this process (pyfluidsynth): the import, the SoundFont, and raw MIDI bytes.

Shared by offline rendering (:mod:`tuneforge.playback.render`) and the built-in synthesizer
(:mod:`tuneforge.playback.synth`), so both turn a message into sound the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.errors import PlaybackError

DRUM_CHANNEL = 9  # General MIDI percussion (channel 10 counting from 1) plays bank 128
NUM_CHANNELS = 16


def fluidsynth_module():
    """Import pyfluidsynth lazily: it loads libfluidsynth, which `--help` should not need."""
    try:
        import fluidsynth
    except ImportError as error:
        raise PlaybackError(
            "pyfluidsynth or libfluidsynth is missing; run `sudo apt-get install fluidsynth`"
            " and `pip install pyfluidsynth`"
        ) from error
    return fluidsynth


def new_synth(soundfont_path: str | Path, *, sample_rate_hz: int, gain: float) -> Any:
    """A ``fluidsynth.Synth`` with the SoundFont loaded: piano on every channel, drums on 10.

    Raises:
        PlaybackError: the settings are out of range or the SoundFont cannot be loaded.
    """
    if sample_rate_hz < 8000 or sample_rate_hz > 192000:
        raise PlaybackError(f"sample rate {sample_rate_hz} Hz is out of range; use 8000..192000")
    if not 0 < gain <= 10:
        raise PlaybackError(f"gain {gain} is out of range; use a value in (0, 10]")
    fluidsynth = fluidsynth_module()
    synth = fluidsynth.Synth(gain=float(gain), samplerate=float(sample_rate_hz))
    sfid = synth.sfload(str(soundfont_path), 1)
    if sfid < 0:
        synth.delete()
        raise PlaybackError(f"FluidSynth cannot load {soundfont_path}; is it a .sf2 file?")
    for channel in range(NUM_CHANNELS):
        synth.program_select(channel, sfid, 128 if channel == DRUM_CHANNEL else 0, 0)
    return synth


def apply_raw(synth: Any, data: list[int] | bytes) -> None:
    """Hand one raw channel message (status byte first) to the synthesizer.

    Aftertouch and system messages are ignored: pyfluidsynth's support for them differs
    between versions, and no file tuneforge writes uses them.
    """
    if len(data) < 2:
        return
    status, channel = data[0] & 0xF0, data[0] & 0x0F
    if status == 0x90 and len(data) > 2 and data[2] > 0:
        synth.noteon(channel, data[1], data[2])
    elif status in (0x80, 0x90):
        synth.noteoff(channel, data[1])
    elif status == 0xB0 and len(data) > 2:
        synth.cc(channel, data[1], data[2])
    elif status == 0xC0:
        synth.program_change(channel, data[1])
    elif status == 0xE0 and len(data) > 2:
        # pyfluidsynth takes a signed bend (-8192..8191); the bytes carry 14 unsigned bits.
        synth.pitch_bend(channel, (data[1] | data[2] << 7) - 8192)
