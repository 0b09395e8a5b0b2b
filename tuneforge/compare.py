"""The matched-parameter bake-off: several models (kind x cell) trained in turn on one data set
at one parameter budget, with one split, seed, window and optimizer, then scored, sampled and
ranked.

It never prints: progress goes to a :class:`CompareCallbacks` object. The compare folder holds
``compare.json`` (the settings, so that a second run with other settings is refused), one run
folder per entry (as :func:`tuneforge.train.train` writes it, plus ``result.json`` once the
entry is done), ``samples/`` (one MIDI file per entry) and ``report.json`` + ``report.md``,
rewritten after every entry. Running again continues where a run stopped: finished entries
are read back, an interrupted one resumes from its ``last`` checkpoint.

The leaderboard is ranked by validation NLL (hyper-parameters and checkpoints are chosen on the
validation split, never on the test split); every NLL is scored by the settings' protocol
(``docs/protocols.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tuneforge.compare_report import write_report
from tuneforge.errors import ConfigError
from tuneforge.evaluate import PROTOCOLS, check_protocol
from tuneforge.files import make_folder, write_text
from tuneforge.train_config import TrainConfig
from tuneforge.train_events import TrainCallbacks

SETTINGS_FILE = "compare.json"
RESULT_FILE = "result.json"
TRAIN_OVERRIDES = ("lr",)  # TrainConfig fields an --override may change for one entry


@dataclass(frozen=True)
class CompareSettings:
    """Everything that makes a bake-off what it is; a folder keeps the settings it was made
    with (device and threads are not part of them: they change speed, not results)."""

    data: str  # the DATA of the command line
    models: tuple[str, ...]  # model kinds
    cells: tuple[str, ...]
    params: int  # parameter budget of every entry
    protocol: str  # a key of tuneforge.evaluate.PROTOCOLS
    train: TrainConfig  # shared by every entry (per-entry lr overrides aside)
    model_options: dict[str, Any] = field(default_factory=dict)  # shared, e.g. head, dropout
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # target -> {key: value}
    split_seed: int = 0
    steps_per_beat: int = 4
    sample_steps: int = 32  # steps of each entry's sample
    temperature: float = 0.8

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, device and threads left out."""
        document = asdict(self)
        document["models"], document["cells"] = list(self.models), list(self.cells)
        for name in ("device", "threads"):
            document["train"].pop(name)
        return document


@dataclass(frozen=True)
class Entry:
    """One contestant: a model kind with a cell, its config at the budget, its overrides."""

    kind: str
    cell: str
    model_config: Any  # the model registry's config, fitted to the data
    overrides: dict[str, str] = field(default_factory=dict)  # as given, shown in the table

    @property
    def label(self) -> str:
        """``kind/cell``, e.g. ``sequence/rru``."""
        return f"{self.kind}/{self.cell}"

    @property
    def folder(self) -> str:
        """The entry's run folder inside the compare folder."""
        return f"{self.kind}-{self.cell}"


@dataclass
class EntryResult:
    """What one entry scored; a row of the leaderboard and of ``report.json``."""

    label: str
    kind: str
    cell: str
    overrides: dict[str, str]
    parameters: int
    valid_nll: float  # of the best checkpoint, by the protocol
    test_nll: float | None  # of the best checkpoint, by the protocol (None: no test split)
    test_accuracy: float | None
    epochs: int  # epochs trained
    best_epoch: int  # 0-based
    stopped: str  # "epochs", "early stopping" or "time budget"
    seconds_per_epoch: float
    frames_per_s: float  # training throughput, mean over epochs
    sample_midi: str = ""  # the entry's sample, relative to the compare folder
    stats_line: str = ""  # tuneforge.data.comparison.short_summary of the sample
    model: str = ""  # the model in words

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntryResult:
        """Inverse of :func:`dataclasses.asdict` (None NLLs stay None, NaN comes back)."""
        return cls(**{**data, "valid_nll": _number(data["valid_nll"])})


@dataclass
class CompareReport:
    """The bake-off so far: settings, and the finished entries ranked by validation NLL."""

    settings: CompareSettings
    results: list[EntryResult]
    total: int  # entries planned

    @property
    def ranked(self) -> list[EntryResult]:
        """Results by validation NLL, best first (NaN last)."""
        return sorted(self.results, key=lambda r: (math.isnan(r.valid_nll), r.valid_nll))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return _without_nan(
            {
                "settings": self.settings.to_dict(),
                "protocol": self.settings.protocol,
                "protocol_description": PROTOCOLS[self.settings.protocol],
                "ranked_by": "valid NLL",
                "entries_done": len(self.results),
                "entries_total": self.total,
                "leaderboard": [asdict(r) for r in self.ranked],
            }
        )


class CompareCallbacks:
    """Receives the bake-off's progress; subclass and override what you show."""

    def on_entry_start(self, index: int, total: int, entry: Entry, resumed: bool) -> None:
        """Before entry ``index`` (0-based) trains; ``resumed``: from its ``last`` checkpoint."""

    def on_entry_skipped(self, index: int, total: int, result: EntryResult) -> None:
        """Entry ``index`` was finished by an earlier run and is read back."""

    def on_entry_end(self, index: int, total: int, result: EntryResult) -> None:
        """Entry ``index`` is trained, scored and sampled."""

    def train_callbacks(self, entry: Entry) -> TrainCallbacks:
        """What receives the training progress of ``entry`` (default: nothing)."""
        return TrainCallbacks()


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["rru:dropout=0.5,rru_dropout=0.6", ...]`` -> ``{"rru": {"dropout": "0.5", ...}}``.

    A target is a cell (every model kind with it) or ``kind/cell``; keys are model options
    (``dropout``, ``layers``, ...), cell options (``rru_dropout``) or ``lr``. Values stay text:
    whoever builds the entries types and checks them.
    """
    overrides: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, pairs = item.partition(":")
        if not sep or not target.strip() or not pairs.strip():
            raise ConfigError(
                f"--override wants TARGET:KEY=VALUE[,KEY=VALUE...], e.g. rru:dropout=0.5, "
                f"got {item!r}"
            )
        chosen = overrides.setdefault(target.strip(), {})
        for pair in pairs.split(","):
            key, eq, value = pair.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--override {item!r}: {pair!r} is not KEY=VALUE")
            chosen[key.strip().replace("-", "_")] = value.strip()
    return overrides


def overrides_for(overrides: dict[str, dict[str, str]], kind: str, cell: str) -> dict[str, str]:
    """The overrides of the entry ``kind/cell``: its cell's, then its own (which win)."""
    return {**overrides.get(cell, {}), **overrides.get(f"{kind}/{cell}", {})}


def check_folder(out_dir: Path, settings: CompareSettings) -> bool:
    """Raise ConfigError if ``out_dir`` holds a bake-off with other settings, naming the first
    differences; True if it holds one with these settings (to be continued)."""
    saved_path = out_dir / SETTINGS_FILE
    if not saved_path.is_file():
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise ConfigError(
                f"{out_dir} is not empty and holds no {SETTINGS_FILE}; pick another --out"
            )
        return False
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    differences = _differences(saved, settings.to_dict())
    if differences:
        shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
        raise ConfigError(
            f"{out_dir} holds a compare made with other settings ({shown}); run it with those "
            "settings to continue it, or pick another --out"
        )
    return True


def run_compare(
    settings: CompareSettings,
    entries: Sequence[Entry],
    dataset: Any,
    out_dir: Path | str,
    *,
    callbacks: CompareCallbacks | None = None,
) -> CompareReport:
    """Train, score and sample every entry of the bake-off in turn, in ``out_dir``.

    Entries finished by an earlier run are read back; an interrupted one resumes from its
    ``last`` checkpoint. Ctrl-C raises :class:`tuneforge.train.TrainingInterrupted` (the folder
    stays resumable). Raises ConfigError when ``out_dir`` holds a compare of other settings.
    """
    from tuneforge.models.registry import build_model
    from tuneforge.train import train

    check_protocol(settings.protocol)
    out_dir = Path(out_dir)
    callbacks = callbacks or CompareCallbacks()
    check_folder(out_dir, settings)
    make_folder(out_dir)
    write_text(
        out_dir / SETTINGS_FILE, json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n"
    )
    report = CompareReport(settings, [], len(entries))
    data_meta = {
        "data_spec": settings.data,
        "split_seed": settings.split_seed,
        "keep_percussion": False,
        "fold_octaves": False,
    }
    for index, entry in enumerate(entries):
        run_dir = out_dir / entry.folder
        if (run_dir / RESULT_FILE).is_file():
            result = EntryResult.from_dict(json.loads((run_dir / RESULT_FILE).read_text("utf-8")))
            report.results.append(result)
            callbacks.on_entry_skipped(index, len(entries), result)
            continue
        resumed = (run_dir / "last.json").is_file()
        callbacks.on_entry_start(index, len(entries), entry, resumed)
        config = _entry_train_config(settings.train, entry.overrides)
        trained = train(
            config,
            dataset,
            model=build_model(entry.model_config, seed=config.seed),
            run_dir=run_dir,
            callbacks=callbacks.train_callbacks(entry),
            resume=resumed,
            data_meta=data_meta,
        )
        result = _score_and_sample(settings, entry, trained, dataset, out_dir, config.device)
        write_text(run_dir / RESULT_FILE, json.dumps(_without_nan(asdict(result)), indent=2) + "\n")
        report.results.append(result)
        write_report(report, out_dir)
        callbacks.on_entry_end(index, len(entries), result)
    write_report(report, out_dir)
    return report


def _entry_train_config(shared: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    changes: dict[str, Any] = {}
    for key in TRAIN_OVERRIDES:
        if key in overrides:
            try:
                changes[key] = float(overrides[key])
            except ValueError:
                raise ConfigError(f"--override {key}={overrides[key]!r} is not a number") from None
    config = replace(shared, **changes)
    config.check()
    return config


def _score_and_sample(settings, entry, trained, dataset, out_dir: Path, device: str):
    """The entry's result: NLLs of its best checkpoint by the protocol, its sample and stats."""
    from tuneforge.checkpoint import load_checkpoint
    from tuneforge.data.comparison import NamedRoll, short_summary
    from tuneforge.device import choose_device
    from tuneforge.evaluate import score_split
    from tuneforge.generate import Request, generate, load_generator
    from tuneforge.models.registry import describe_model
    from tuneforge.sample import SamplingOptions

    run_dir = Path(trained.run_dir)
    valid_nll, test_nll, test_accuracy = (
        trained.best_valid_nll,
        trained.test_nll,
        trained.test_accuracy,
    )
    if settings.protocol != "tcn":
        torch_device = choose_device(device)
        best = load_checkpoint(run_dir / "best", device=torch_device).model
        valid_nll = score_split(
            best, dataset, "valid", protocol=settings.protocol, device=torch_device
        )[0].nll
        if dataset.test:
            scores, _ = score_split(
                best, dataset, "test", protocol=settings.protocol, device=torch_device
            )
            test_nll, test_accuracy = scores.nll, scores.accuracy
    generator = load_generator(str(run_dir / "best"), device=device)
    request = Request(
        num_steps=settings.sample_steps,
        seed=settings.train.seed,
        options=SamplingOptions(temperature=settings.temperature),
    )
    piece = generate(generator, request, out_dir / "samples")[0]
    stats_line = short_summary(
        [NamedRoll(piece.midi_path.name, piece.roll, piece.onsets)],
        dataset,
        steps_per_beat=int(dataset.steps_per_beat),
    )
    history = trained.history
    return EntryResult(
        label=entry.label,
        kind=entry.kind,
        cell=entry.cell,
        overrides=dict(entry.overrides),
        parameters=trained.parameters,
        valid_nll=float(valid_nll),
        test_nll=test_nll,
        test_accuracy=test_accuracy,
        epochs=len(history),
        best_epoch=trained.best_epoch,
        stopped=trained.stopped,
        seconds_per_epoch=trained.seconds_per_epoch,
        frames_per_s=sum(h.frames_per_s for h in history) / len(history) if history else 0.0,
        sample_midi=str(piece.midi_path.relative_to(out_dir)),
        stats_line=stats_line,
        model=describe_model(entry.model_config),
    )


def _differences(saved: Any, wanted: Any, path: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(wanted, dict):
        found = []
        for key in sorted(set(saved) | set(wanted)):
            found += _differences(saved.get(key), wanted.get(key), f"{path}{key}.")
        return found
    if saved != wanted:
        return [f"{path.rstrip('.')} was {saved!r}, now {wanted!r}"]
    return []


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _without_nan(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
