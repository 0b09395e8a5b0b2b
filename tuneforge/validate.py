"""The ranges of the numbers a user gives, checked in one place before any work starts.

Each number has a name (the field or argument that holds it), the option that sets it on the
command line, and the closed range a run can use. A value outside it, or not finite, raises
:class:`~tuneforge.errors.ConfigError` with one line naming the option, the range and the
value. The library checks its configs with these limits; the CLI calls the same checks before
it loads a model or reads data, so a typo fails at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tuneforge.errors import ConfigError

# MIDI stores a tempo as microseconds per beat in 24 bits: 16.7 s per beat, about 3.6 bpm.
LOWEST_TEMPO_BPM = 4.0
MAX_SEED = 2**32 - 1  # numpy seeds are unsigned 32-bit words


@dataclass(frozen=True)
class Limit:
    """The usable range of one number; ``above`` makes ``low`` itself excluded."""

    option: str  # as the command line spells it
    low: float
    high: float
    unit: str = ""
    above: bool = False  # the value must be strictly above ``low``

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        low = f"> {self.low:g}" if self.above else f"at least {self.low:g}"
        return f"{low} and at most {self.high:g}{unit}"


LIMITS: dict[str, Limit] = {
    # Training.
    "lr": Limit("--lr", 0.0, 100.0, above=True),
    "batch_size": Limit("--batch-size", 1, 65_536),
    "window_steps": Limit("--window-steps", 1, 1_000_000, "steps"),
    "epochs": Limit("--epochs", 1, 1_000_000),
    "patience": Limit("--patience", 1, 1_000_000),
    "clip": Limit("--clip", 0.0, 1e6),
    "transpose_semitones": Limit("--transpose-semitones", 0, 48, "semitones"),
    "seed": Limit("--seed", 0, MAX_SEED),
    "eval_batch_size": Limit("--batch-size", 1, 65_536),
    "threads": Limit("--threads", 0, 4096),
    "time_budget_s": Limit("the time budget", 0.0, 1e9, "s"),
    "steps_per_beat": Limit("--steps-per-beat", 1, 96),
    "split_seed": Limit("--split-seed", 0, MAX_SEED),
    # Model sizes.
    "hidden_size": Limit("--hidden-size", 1, 65_536, "units"),
    "num_layers": Limit("--num-layers", 1, 64),
    "note_hidden_size": Limit("--note-hidden-size", 1, 65_536, "units"),
    "note_layers": Limit("--note-layers", 1, 64),
    "dropout": Limit("--dropout", 0.0, 0.95),
    "window_semitones": Limit("--window-semitones", 0, 87, "semitones"),
    "params": Limit("--params", 100, 10_000_000_000),
    # Generation and playback.
    "temperature": Limit("--temperature", 0.0, 100.0, above=True),
    "num_pieces": Limit("--num-pieces", 1, 256),
    "num_steps": Limit("--num-steps", 1, 100_000, "steps"),
    "length_beats": Limit("--length", 0.0, 25_000, "beats", above=True),
    "primer_beats": Limit("--primer-beats", 0.0, 100_000, "beats", above=True),
    "max_silence_beats": Limit("--max-silence-beats", 0.0, 100_000, "beats", above=True),
    "max_polyphony": Limit("--max-polyphony", 1, 88),
    "tempo_bpm": Limit("--tempo-bpm", LOWEST_TEMPO_BPM, 1000.0, "bpm"),
    "program": Limit("--program", 0, 127),
    "sample_rate_hz": Limit("--sample-rate-hz", 8000, 384_000, "Hz"),
    "gain": Limit("--gain", 0.0, 10.0),
    "tail_s": Limit("--tail-s", 0.0, 600.0, "s"),
}


def check_number(name: str, value: Any, *, option: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` lies in the range of ``LIMITS[name]``.

    None means "not given" and passes. ``option`` names the option in the message instead of
    the limit's own (e.g. ``--width`` where an alias is clearer).
    """
    if value is None or isinstance(value, bool):
        return
    limit = LIMITS[name]
    flag = option or limit.option
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{flag} must be a finite number, {limit.describe()}; got {value}")
    low_ok = number > limit.low if limit.above else number >= limit.low
    if not (low_ok and number <= limit.high):
        raise ConfigError(f"{flag} must be {limit.describe()}, got {value}")


def check_numbers(values: dict[str, Any]) -> None:
    """:func:`check_number` for each ``{name: value}`` (names of ``LIMITS``), in order."""
    for name, value in values.items():
        check_number(name, value)


def check_model_config(config: Any) -> None:
    """Check the sizes of a model config (sequence or biaxial) against ``LIMITS``."""
    fields = {
        "hidden_size": ("hidden_size", "time_hidden_size"),
        "num_layers": ("num_layers", "time_layers"),
        "note_hidden_size": ("note_hidden_size",),
        "note_layers": ("note_layers",),
        "dropout": ("dropout",),
        "window_semitones": ("window_semitones",),
    }
    for name, candidates in fields.items():
        for field_name in candidates:
            if hasattr(config, field_name):
                check_number(name, getattr(config, field_name))
                break
