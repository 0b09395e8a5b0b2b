"""The bake-off's leaderboard as text: rows for tables, and ``report.md`` + ``report.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.evaluate import PROTOCOLS
from tuneforge.files import write_text

if TYPE_CHECKING:
    from tuneforge.compare import CompareReport


def leaderboard_rows(report: CompareReport) -> list[dict[str, str]]:
    """The leaderboard as text cells, best validation NLL first (for tables and Markdown)."""
    rows = []
    for rank, result in enumerate(report.ranked, start=1):
        rows.append(
            {
                "rank": str(rank),
                "entry": result.label,
                "overrides": ", ".join(f"{k}={v}" for k, v in result.overrides.items()) or "-",
                "valid NLL": _format(result.valid_nll),
                "test NLL": _format(result.test_nll),
                "frame acc.": _format(result.test_accuracy, 3),
                "parameters": f"{result.parameters:,}",
                "epochs": f"{result.epochs} ({result.stopped})",
                "s/epoch": f"{result.seconds_per_epoch:.1f}",
                "frames/s": f"{result.frames_per_s:,.0f}",
            }
        )
    return rows


def write_report(report: CompareReport, out_dir: Path) -> None:
    """Write ``report.json`` and ``report.md`` into ``out_dir``."""
    write_text(out_dir / "report.json", json.dumps(report.to_dict(), indent=2) + "\n")
    settings = report.settings
    rows = leaderboard_rows(report)
    lines = [
        f"# compare {settings.data}: {len(report.results)}/{report.total} entries",
        "",
        f"Protocol `{settings.protocol}`: {PROTOCOLS[settings.protocol]}. Budget "
        f"{settings.params:,} parameters; {settings.train.epochs} epochs at most"
        + (f", {settings.train.time_budget_s:g} s each" if settings.train.time_budget_s else "")
        + f"; optimizer {settings.train.optimizer}, lr {settings.train.lr:g}, window "
        f"{settings.train.window_steps} steps, batch {settings.train.batch_size}, seed "
        f"{settings.train.seed}. Ranked by valid NLL; frame accuracy on test.",
        "",
    ]
    if rows:
        header = list(rows[0])
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
        lines += ["", "## Samples", ""]
        lines += [f"- {r.label}: `{r.sample_midi}`: {r.stats_line}" for r in report.ranked]
    write_text(out_dir / "report.md", "\n".join(lines) + "\n")


def _format(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"
