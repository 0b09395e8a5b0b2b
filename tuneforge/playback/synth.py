"""The built-in synthesizer: FluidSynth in this process, behind the live player's output.

:class:`SynthOutput` has the ``send``/``close`` of :class:`~tuneforge.playback.live.MidiOutput`,
so :func:`~tuneforge.playback.live.play_events` schedules, pauses and panics exactly as it
does for a MIDI port; only the last hop differs. Sound goes to the machine's audio output
through the first FluidSynth audio driver that opens (:data:`AUDIO_DRIVERS`), or to a WAV
file through FluidSynth's file driver, which writes in real time as a sound card would play.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.errors import PlaybackError
from tuneforge.playback.fluid import apply_raw, fluidsynth_module, new_synth
from tuneforge.playback.native import native_stderr_captured

# Tried in this order when no driver is named: desktop sound servers first, then the raw
# devices. FluidSynth builds include only some of them; the others fail to open, harmlessly.
AUDIO_DRIVERS: tuple[str, ...] = ("pulseaudio", "pipewire", "alsa", "jack", "coreaudio")
FILE_DRIVER = "file"
JACK_NO_START_ENV = "JACK_NO_START_SERVER"
RELEASE_TAIL_S = 1.0  # kept sounding after the last message, so released notes ring out
FILE_PERIOD_FRAMES = 441  # 10 ms at 44.1 kHz: the file driver's timer ticks in whole ms

RENDER_HINT = (
    "record what the synth plays with --audio-file OUT.wav, or render offline with"
    " `tuneforge render FILE.mid`"
)


@dataclass
class SynthOutput:
    """FluidSynth playing to an audio driver; sent raw MIDI bytes like a port."""

    synth: Any  # fluidsynth.Synth with its audio driver started
    driver: str  # the FluidSynth audio driver in use, e.g. "pulseaudio" or "file"
    tail_s: float = RELEASE_TAIL_S
    audio_file: Path | None = None

    @property
    def api(self) -> str:
        """Where the sound goes, for messages to the user (as ``MidiOutput.api``)."""
        return "built-in synth"

    @property
    def port_name(self) -> str:
        """The audio driver or file, for messages to the user (as ``MidiOutput.port_name``)."""
        if self.audio_file is not None:
            return f"FluidSynth -> {self.audio_file}"
        return f"FluidSynth -> {self.driver}"

    def send(self, data: list[int] | bytes) -> None:
        """Play one raw MIDI message now."""
        apply_raw(self.synth, data)

    def close(self) -> None:
        """Let released notes ring for ``tail_s``, then stop the driver (closing the file)."""
        try:
            time.sleep(self.tail_s)
        finally:
            # Deleting the synth deletes its driver; the file driver finishes the WAV header.
            self.synth.delete()


@contextmanager
def _jack_autostart_disabled() -> Iterator[None]:
    """Keep libjack from launching a JACK server while drivers are probed: it takes seconds,
    prints on stdout, and on a machine without a sound card fails anyway."""
    saved = os.environ.get(JACK_NO_START_ENV)
    os.environ[JACK_NO_START_ENV] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[JACK_NO_START_ENV]
        else:
            os.environ[JACK_NO_START_ENV] = saved


def _start_driver(synth: Any, driver: str, *, probing: bool) -> tuple[Any, str]:
    """Start FluidSynth's audio driver ``driver``; return (handle or None, why it failed)."""
    fluidsynth = fluidsynth_module()
    synth.setting("audio.driver", driver)
    with native_stderr_captured() as captured:
        if probing:
            with _jack_autostart_disabled():
                handle = fluidsynth.new_fluid_audio_driver(synth.settings, synth.synth)
        else:
            handle = fluidsynth.new_fluid_audio_driver(synth.settings, synth.synth)
    if handle:
        return handle, ""
    reason = captured.last_line("fluidsynth: error:")
    if "Couldn't find the requested audio driver" in reason:
        reason = "not in this FluidSynth build"
    elif "error: " in reason:  # PulseAudio wraps its own message: keep the cause
        reason = reason.rsplit("error: ", 1)[1]
    return None, reason.rstrip(".") or "cannot open"


def open_synth(
    soundfont_path: str | Path,
    *,
    audio_driver: str | None = None,
    audio_file: str | Path | None = None,
    sample_rate_hz: int = 44100,
    gain: float = 0.8,
    tail_s: float = RELEASE_TAIL_S,
) -> SynthOutput:
    """Start FluidSynth with the SoundFont, sounding through an audio driver or into a file.

    Args:
        soundfont_path: the .sf2 file to play with (see :func:`~.soundfont.find_soundfont`).
        audio_driver: the one FluidSynth driver to use; None tries :data:`AUDIO_DRIVERS`.
        audio_file: write a WAV here (FluidSynth's file driver) instead of sounding.
        tail_s: how long :meth:`SynthOutput.close` lets the last notes ring.

    Raises:
        PlaybackError: no driver opened; the message names each driver tried and why, and
            the ways that need no audio device.
    """
    if tail_s < 0:
        raise PlaybackError(f"the release tail must be >= 0 s, got {tail_s}")
    synth = new_synth(soundfont_path, sample_rate_hz=sample_rate_hz, gain=gain)
    if audio_file is not None:
        audio_file = Path(audio_file)
        if audio_driver not in (None, FILE_DRIVER):
            synth.delete()
            raise PlaybackError("give either --audio-driver or --audio-file, not both")
        if not audio_file.parent.is_dir():
            synth.delete()
            raise PlaybackError(f"no folder {audio_file.parent} for the audio file; create it")
        synth.setting("audio.file.name", str(audio_file))
        synth.setting("audio.file.type", "wav")
        synth.setting("audio.period-size", FILE_PERIOD_FRAMES)
        drivers: tuple[str, ...] = (FILE_DRIVER,)
    else:
        drivers = AUDIO_DRIVERS if audio_driver is None else (audio_driver,)
    tried = []
    for driver in drivers:
        handle, reason = _start_driver(synth, driver, probing=audio_driver is None)
        if handle:
            synth.audio_driver = handle  # pyfluidsynth deletes it with the synth
            return SynthOutput(synth, driver, tail_s=tail_s, audio_file=audio_file)
        tried.append(f"{driver} ({reason})")
    synth.delete()
    if audio_file is not None:
        raise PlaybackError(f"FluidSynth cannot write {audio_file}: {tried[0]}")
    raise PlaybackError(f"no audio driver usable here (tried {', '.join(tried)}); {RENDER_HINT}")
