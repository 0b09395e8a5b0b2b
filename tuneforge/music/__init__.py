"""Music representations: piano rolls (pure numpy) and MIDI files (mido)."""
