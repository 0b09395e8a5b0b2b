"""tuneforge: recurrent models of polyphonic music, from MIDI folders to sound."""

__version__ = "0.1.0"
