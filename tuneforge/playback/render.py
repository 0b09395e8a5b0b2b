"""Offline rendering of a MIDI file to a WAV file through FluidSynth (pyfluidsynth).

No audio driver is started: the synthesizer is asked for exactly the samples between one
message and the next, so rendering runs as fast as the CPU allows and the WAV lasts as long as
the piece plus a short release tail.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.errors import ConfigError, PlaybackError
from tuneforge.music.events import EventList, read_events
from tuneforge.playback.fluid import apply_raw, new_synth

BLOCK_FRAMES = 4096  # samples per channel asked of FluidSynth at a time; bounds memory
# A longer piece is refused before anything is written: an hour of 44.1 kHz stereo is 635 MB of
# WAV, and a corrupt tempo map easily asks for days.
DEFAULT_MAX_MINUTES = 60.0


@dataclass(frozen=True)
class RenderReport:
    """What was written: where, how long, how loud."""

    path: Path
    duration_s: float
    sample_rate_hz: int
    peak: float  # largest absolute sample, 0..1 of full scale
    rms: float  # root mean square of all samples, 0..1 of full scale


def render_events(
    events: EventList,
    wav_path: str | Path,
    *,
    soundfont_path: str | Path,
    sample_rate_hz: int = 44100,
    gain: float = 0.8,
    tail_s: float = 1.0,
) -> RenderReport:
    """Render timed messages to a 16-bit stereo WAV at ``wav_path``.

    Args:
        events: messages and duration, e.g. from :func:`~tuneforge.music.events.read_events`.
        soundfont_path: the .sf2 file to play with.
        sample_rate_hz: output sample rate.
        gain: FluidSynth master gain (0.2 is its default; polyphonic pieces clip above ~1).
        tail_s: silence after the last event, so released notes can ring out.
    """
    wav_path = Path(wav_path)
    synth = new_synth(soundfont_path, sample_rate_hz=sample_rate_hz, gain=gain)
    try:
        total_frames = int(round((events.duration_s + tail_s) * sample_rate_hz))
        written = 0
        sum_squares = 0.0
        peak = 0

        with wave.open(str(wav_path), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate_hz)

            def advance_to(frame: int) -> None:
                nonlocal written, sum_squares, peak
                while written < frame:
                    count = min(BLOCK_FRAMES, frame - written)
                    block = np.asarray(synth.get_samples(count), dtype=np.int16)
                    wav.writeframesraw(block.tobytes())
                    if block.size:
                        wide = block.astype(np.int64)
                        sum_squares += float(np.dot(wide, wide))
                        peak = max(peak, int(np.abs(wide).max()))
                    written += count

            for event in events.events:
                advance_to(min(total_frames, int(round(event.time_s * sample_rate_hz))))
                apply_raw(synth, event.message.bytes())
            advance_to(total_frames)
    finally:
        synth.delete()
    samples = max(1, 2 * written)
    return RenderReport(
        path=wav_path,
        duration_s=written / sample_rate_hz,
        sample_rate_hz=sample_rate_hz,
        peak=peak / 32768,
        rms=float(np.sqrt(sum_squares / samples)) / 32768,
    )


def render_midi(
    midi_path: str | Path,
    wav_path: str | Path | None = None,
    *,
    soundfont_path: str | Path,
    sample_rate_hz: int = 44100,
    gain: float = 0.8,
    tail_s: float = 1.0,
    max_minutes: float = DEFAULT_MAX_MINUTES,
) -> RenderReport:
    """Render a MIDI file to WAV (default: the same name with ``.wav``) and report on it.

    Raises:
        PlaybackError: the piece plays longer than ``max_minutes`` (checked before rendering).
    """
    if not max_minutes > 0:
        raise ConfigError(f"max_minutes must be > 0, got {max_minutes}")
    midi_path = Path(midi_path)
    target = midi_path.with_suffix(".wav") if wav_path is None else Path(wav_path)
    events = read_events(midi_path)
    minutes = (events.duration_s + tail_s) / 60.0
    if minutes > max_minutes:
        raise PlaybackError(
            f"{midi_path} plays for {minutes:,.1f} minutes, more than the {max_minutes:g} "
            "allowed; pass --max-minutes to render it anyway"
        )
    return render_events(
        events,
        target,
        soundfont_path=soundfont_path,
        sample_rate_hz=sample_rate_hz,
        gain=gain,
        tail_s=tail_s,
    )
