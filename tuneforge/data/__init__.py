"""Data sets: MIDI folders (parallel, cached, reported file by file), the benchmark sets,
seeded splits, and windows for truncated backpropagation through time."""
