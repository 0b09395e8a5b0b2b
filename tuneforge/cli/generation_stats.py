"""The one line `tuneforge generate --stats` prints: the pieces' figures beside the model's
training data, and the memorization meter against its training split."""

from __future__ import annotations

from collections.abc import Sequence

from tuneforge.errors import DataError


def generation_stats_line(pieces: Sequence, generator) -> str:
    """The short form of :func:`tuneforge.data.comparison.short_summary` for ``pieces``
    (:class:`~tuneforge.generate.GeneratedPiece`) against the data the model's checkpoint
    names; when it names none, or they cannot be read, that is said first, with the pieces'
    figures alone."""
    from tuneforge.data.comparison import NamedRoll, short_summary, training_data_of

    named = [NamedRoll(p.midi_path.name, p.roll, p.onsets, p.time_signatures) for p in pieces]
    spb = generator.steps_per_beat
    try:
        dataset = training_data_of(generator.meta)
    except DataError as error:
        alone = short_summary(named, None, steps_per_beat=spb)
        return f"stats: cannot read the training data ({error}); {alone}"
    if dataset is None:
        alone = short_summary(named, None, steps_per_beat=spb)
        return f"stats: model {generator.name} records no training data; {alone}"
    line = short_summary(named, dataset, steps_per_beat=spb)
    return f"stats: {line}"
