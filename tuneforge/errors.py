"""The one error family of tuneforge.

Every failure a user can cause (bad input, missing hardware, a corrupt file) is raised as a
subclass of :class:`TuneforgeError` with a one-line message that says what to do. The CLI prints
that line in red and exits 1; other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations


class TuneforgeError(Exception):
    """Base of every error a user can cause; its message is one actionable line."""


class MidiError(TuneforgeError):
    """A MIDI file could not be read or was rejected (corrupt, truncated, absurd timing)."""


class DataError(TuneforgeError):
    """A data set or folder is unusable (missing, empty, no usable file, unknown name)."""


class ConfigError(TuneforgeError):
    """An option or combination of options is invalid (unknown cell, bad size, T <= 0)."""


class CheckpointError(TuneforgeError):
    """A checkpoint is missing, corrupt, or from another format version."""


class TrainingError(TuneforgeError):
    """Training cannot go on (a loss that became NaN or infinite, an unusable device)."""


class PlaybackError(TuneforgeError):
    """Live MIDI output or audio rendering failed (no port, no synth, no SoundFont)."""


class OutputError(TuneforgeError):
    """A file or folder could not be written (read-only, missing parent, full disk, in use)."""
