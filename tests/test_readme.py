"""The README runs as written: its ```bash blocks, in order, in a fresh working folder.

The folder holds a copy of ``examples/`` and stand-ins for what ``bash scripts/setup.sh``
leaves behind (``.venv/bin/tuneforge`` and ``.venv/bin/activate``, resolving to the interpreter
running these tests and this checkout's package), so that the commands are run verbatim with
``TUNEFORGE_SMOKE=1`` (the README's own switch for one short epoch per training). ``curl`` gets
the benchmark file from ``../shared/data/benchmarks`` rather than the network. Two things are
left out, each tested elsewhere: the README's test command (it is this suite; ``.ci/run`` runs
it, as checked below) and the Listening block marked for tests/test_ports.py (it needs JACK).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BENCHMARKS = ROOT / ".." / "shared" / "data" / "benchmarks"
PORTS_MARKER = "<!-- the block below is run by tests/test_ports.py -->"
TEST_COMMAND = "bash scripts/setup.sh && .venv/bin/python -m pytest -q"
BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```bash\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    """Every ```bash block of the README as (marker line or "", text), in order."""
    return [(m.group(1) or "", m.group(2)) for m in BLOCK.finditer(README.read_text("utf-8"))]


def _command(line: str) -> str:
    """A line without its trailing comment (the README's comments start with two spaces)."""
    return line.split("  #")[0].strip()


def test_the_readme_opens_with_the_two_fresh_machine_commands():
    _, first = _blocks()[0]
    lines = [_command(line) for line in first.strip().splitlines()]
    assert lines == [
        "bash scripts/setup.sh && .venv/bin/tuneforge generate --render --out out/",
        TEST_COMMAND,
    ]
    assert README.read_text("utf-8").splitlines()[2] == "```bash"  # right under the title


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    assert ci[-1].strip() == TEST_COMMAND


def test_the_listening_block_keeps_its_marker():
    marked = [text for marker, text in _blocks() if marker.strip() == PORTS_MARKER]
    assert len(marked) == 1 and "jackd" in marked[0]


def _context(folder: Path) -> None:
    """What a fresh clone holds after set-up, as far as the README's commands need it."""
    subprocess.run(["cp", "-r", str(ROOT / "examples"), str(folder / "examples")], check=True)
    (folder / "scripts").mkdir()
    (folder / "scripts" / "setup.sh").write_text(
        "echo '[setup] up to date (the interpreter running the tests)'\n"
    )
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    tuneforge = bin_dir / "tuneforge"  # a console script, so torchrun can run it too
    tuneforge.write_text(
        f"#!{sys.executable}\nimport sys\n\nfrom tuneforge.cli.app import main\n\n"
        "sys.exit(main())\n"
    )
    tuneforge.chmod(0o755)
    interpreter_dir = Path(sys.executable).parent  # torchrun lives beside the interpreter
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:{interpreter_dir}:$PATH"\n')


# `curl -fsSL -o FILE URL`: FILE is copied from the local benchmark folder, by URL's last part.
CURL = f"""curl() {{
    local out="" url=""
    while [ $# -gt 0 ]; do
        case "$1" in -o) out="$2"; shift 2;; -*) shift;; *) url="$1"; shift;; esac
    done
    cp "{BENCHMARKS}/${{url##*/}}" "$out"
}}
"""


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    if not (BENCHMARKS / "JSB_Chorales.mat").is_file():
        pytest.skip("the benchmark sets are not in ../shared/data/benchmarks")
    folder = tmp_path / "clone"
    folder.mkdir()
    _context(folder)
    parts = []
    for marker, text in _blocks():
        if marker.strip() == PORTS_MARKER:
            continue
        parts.append("\n".join(line for line in text.splitlines() if TEST_COMMAND not in line))
    script = CURL + "PS4='+ $EPOCHREALTIME '\nset -euxo pipefail\n" + "\n".join(parts)
    env = {key: value for key, value in os.environ.items() if key != "TUNEFORGE_DATA_DIR"}
    env.update(
        TUNEFORGE_SMOKE="1",
        TUNEFORGE_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
        COLUMNS="100",
    )
    log = tmp_path / "log.txt"
    with log.open("w") as out:
        done = subprocess.run(
            ["bash", "-c", script], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    assert done.returncode == 0, log.read_text()[-6000:]

    for run in ("tunes-lstm", "jsb-rru", "jsb-note-axis", "jsb-biaxial", "jsb-ddp"):
        config = json.loads((folder / "runs" / run / "config.json").read_text())
        assert config["train_config"]["epochs"] == 1, run  # TUNEFORGE_SMOKE=1 was honoured
        assert (folder / "runs" / run / "best.safetensors").is_file(), run
    assert (folder / "runs" / "compare-jsb" / "report.md").is_file()
    fresh = next((folder / "out").glob("tuneforge-default-s*-01.wav"))  # the first line's piece
    for audio in (fresh, folder / "out/piece.wav", folder / "heard.wav", folder / "piece.wav"):
        with wave.open(str(audio)) as sound:
            assert sound.getnframes() > 0, audio
    assert (folder / "out" / "roll.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((folder / "out").glob("tuneforge-default-s7-*.mid"))) == 4


DOCS = [README, ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path above the repository, or an absolute path of one machine (system folders such as
# /usr/share/sounds are the same on every machine).
OUTSIDE_THE_REPOSITORY = re.compile(r"\.\./|(?<![\w.:/])/(?!usr/|proc/|dev/|etc/)[a-z]+/[\w.-]")


def _anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of a file's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+ (.*)$", markdown.read_text("utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("markdown", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_and_paths_stay_inside_the_repository(markdown):
    text = markdown.read_text("utf-8")
    outside = OUTSIDE_THE_REPOSITORY.search(text)
    assert outside is None, f"{markdown.name} points outside the repository: {outside.group()}"
    for link in LINK.findall(text):
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = (markdown.parent / path).resolve() if path else markdown
        assert target.exists() and ROOT in target.parents, f"{link} in {markdown.name}"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{link} in {markdown.name}: no such section"
