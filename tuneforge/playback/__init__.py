"""Live MIDI output (python-rtmidi) and offline rendering (pyfluidsynth).

The submodules import their hardware libraries inside functions, so importing this package
costs nothing; import :mod:`tuneforge.playback.live`, :mod:`~tuneforge.playback.render` or
:mod:`~tuneforge.playback.soundfont` where they are needed.
"""
