"""Hostile input to the data layer, class by class: non-regular files, resource bombs, JSON of
the wrong shape, a damaged or unwritable cache, Ctrl-C while parsing, MIDI that mido refuses,
and duplicate files. Every case ends in a report or one line that names the file."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.midi_factory import _raw_track_file, write_midi
from tests.tiny_models import save_tiny
from tuneforge.checkpoint import load_checkpoint
from tuneforge.cli.app import app
from tuneforge.data.benchmarks import load_benchmark
from tuneforge.data.cache import ReadSettings, load_pack
from tuneforge.data.dataset import load_dataset, split_indices
from tuneforge.data.folder import read_folder
from tuneforge.errors import CheckpointError, ConfigError, DataError, MidiError, PlaybackError
from tuneforge.music.midi import MAX_MIDI_BYTES, read_midi
from tuneforge.playback.render import render_midi
from tuneforge.schema import Obj, Range, read_json
from tuneforge.shipped import list_models

runner = CliRunner()


def outcomes(report) -> dict[str, tuple[str, str]]:
    return {f.path: (f.outcome, f.reason) for f in report.files}


def one_line_error(result, *needles: str) -> str:
    """The error line of a CLI run that failed cleanly: exit 1, one line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "tunes"
    write_midi(root / "a.mid", [(60, 0, 4), (64, 4, 8)])
    write_midi(root / "b.mid", [(62, 0, 8)])
    return root


# -- Non-regular files -----------------------------------------------------------------------


def test_a_fifo_in_a_folder_is_reported_and_never_opened(folder):
    os.mkfifo(folder / "pipe.mid")  # opening it for reading would block until a writer came
    report = read_folder(folder, workers=1).report
    assert outcomes(report)["pipe.mid"] == ("failed", "not a regular file")
    assert "FIFO" in {f.path: f for f in report.files}["pipe.mid"].detail
    assert report.num_pieces == 2


def test_a_link_to_dev_zero_is_reported_not_read(folder):
    (folder / "zero.mid").symlink_to("/dev/zero")
    report = read_folder(folder, workers=1).report
    assert outcomes(report)["zero.mid"] == ("failed", "not a regular file")
    assert "character device" in {f.path: f for f in report.files}["zero.mid"].detail


def test_show_and_stats_refuse_a_fifo_in_one_line(folder):
    os.mkfifo(folder / "pipe.mid")
    one_line_error(runner.invoke(app, ["show", str(folder / "pipe.mid")]), "pipe.mid", "FIFO")
    result = runner.invoke(app, ["stats", str(folder / "pipe.mid")])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_a_linked_subfolder_is_read_once_and_a_loop_is_reported(folder, tmp_path):
    outside = tmp_path / "outside"
    write_midi(outside / "c.mid", [(65, 0, 4)])
    (folder / "more").symlink_to(outside)
    (folder / "loop").symlink_to(folder)  # a way back into the folder itself
    (outside / "back").symlink_to(folder)  # and one from the linked folder
    report = read_folder(folder, workers=1).report
    found = outcomes(report)
    assert found["more/c.mid"] == ("used", "")
    assert found["loop"] == ("ignored", "folder read already")
    assert found["more/back"] == ("ignored", "folder read already")
    assert report.num_pieces == 3


# -- Resource bombs --------------------------------------------------------------------------


def test_an_oversized_midi_file_is_refused_unread(folder):
    big = folder / "big.mid"
    with big.open("wb") as file:
        file.write(b"MThd")
        file.truncate(MAX_MIDI_BYTES + 1)  # sparse: no disk, but stat says it is big
    assert outcomes(read_folder(folder, workers=1).report)["big.mid"] == ("skipped", "too large")
    with pytest.raises(MidiError, match="big.mid.*more than"):
        read_midi(big)


def test_a_note_of_absurd_length_is_refused_before_a_roll_is_made(tmp_path):
    # One note held for 2**27 ticks at 1 tick per beat: 500 million steps.
    events = b"\x00\x90\x3c\x40" + b"\xc0\x80\x80\x00\x80\x3c\x00" + b"\x00\xff\x2f\x00"
    path = tmp_path / "long.mid"
    path.write_bytes(_raw_track_file(events, ticks_per_beat=1))
    with pytest.raises(MidiError, match="long.mid.*more than max_steps"):
        read_midi(path)


def test_render_refuses_a_piece_of_hours_before_rendering(tmp_path):
    # A tempo of 16.7 s per beat and an end of track 1,000 beats in: about 4.6 hours.
    events = b"\x00\xff\x51\x03\xff\xff\xff" + b"\x00\x90\x3c\x40" + b"\x87\x68\xff\x2f\x00"
    path = tmp_path / "slow.mid"
    path.write_bytes(_raw_track_file(events, ticks_per_beat=1))
    with pytest.raises(PlaybackError, match="slow.mid plays for 27[0-9.]+ minutes.*--max-minutes"):
        render_midi(path, soundfont_path=tmp_path / "none.sf2")
    assert not (tmp_path / "slow.wav").exists()
    result = runner.invoke(
        app, ["render", str(path), "--soundfont", str(path), "--max-minutes", "10"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_render_accepts_a_higher_cap(tmp_path):
    write_midi(tmp_path / "short.mid", [(60, 0, 4)])
    with pytest.raises(ConfigError):
        render_midi(tmp_path / "short.mid", soundfont_path=tmp_path / "x.sf2", max_minutes=0)


def test_a_pickle_of_shared_references_is_refused(tmp_path):
    step = [60, 64, 67]
    piece = [step] * 1000  # one list, a thousand times: the memo makes the file tiny
    bomb = {"train": [piece] * 1000, "valid": [], "test": []}
    path = tmp_path / "bomb.pickle"
    path.write_bytes(pickle.dumps(bomb, protocol=2))
    assert path.stat().st_size < 10_000
    with pytest.raises(DataError, match="shared references"):
        load_benchmark(path)
    plain = {"train": [[[60], [62, 65]]], "valid": [[[]]], "test": [[(), ()]]}
    path.write_bytes(pickle.dumps(plain, protocol=2))
    assert load_benchmark(path)["train"][0].shape == (2, 88)


def _edit_sidecar(tensor_path: Path, edit) -> Path:
    sidecar = tensor_path.with_suffix(".json")
    document = json.loads(sidecar.read_text())
    edit(document)
    sidecar.write_text(json.dumps(document))
    return sidecar


def test_a_checkpoint_whose_config_asks_for_gigabytes_is_refused_before_loading(tmp_path):
    tensors = save_tiny(tmp_path, "huge")
    _edit_sidecar(tensors, lambda d: d["model_config"].update(hidden_size=1_000_000))
    with pytest.raises(
        CheckpointError, match=r"does not fit its config.*\[4000000, 88\] in huge.json"
    ):
        load_checkpoint(tensors)


def test_a_tensor_header_that_reaches_past_the_file_is_refused(tmp_path):
    tensors = save_tiny(tmp_path, "cut")
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors is corrupt"):
        load_checkpoint(tensors)
    tensors.write_bytes((2**62).to_bytes(8, "little") + data[8:])
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(tensors)


# -- JSON checked against schemas ------------------------------------------------------------


def test_a_checkpoint_field_of_the_wrong_type_is_named(tmp_path):
    tensors = save_tiny(tmp_path, "typed")
    _edit_sidecar(tensors, lambda d: d["model_config"].update(hidden_size="sixteen"))
    with pytest.raises(CheckpointError, match=r"typed.json: field model_config.hidden_size"):
        load_checkpoint(tensors)
    _edit_sidecar(tensors, lambda d: d["model_config"].update(hidden_size=16, dropout=[0.1]))
    with pytest.raises(CheckpointError, match="field model_config.dropout: must be a number"):
        load_checkpoint(tensors)
    _edit_sidecar(tensors, lambda d: d.update(model_config={"dropout": 0.0}, meta=[1]))
    with pytest.raises(CheckpointError, match="field meta: must be"):
        load_checkpoint(tensors)
    _edit_sidecar(tensors, lambda d: d.update(meta={"steps_per_beat": 0}))
    with pytest.raises(CheckpointError, match="field meta.steps_per_beat: must be >= 1"):
        load_checkpoint(tensors)


def test_evaluate_names_the_bad_field_in_one_line(tmp_path):
    tensors = save_tiny(tmp_path, "best")
    _edit_sidecar(tensors, lambda d: d.pop("tensor_sha256"))
    result = runner.invoke(app, ["evaluate", str(tensors), "jsb"])
    one_line_error(result, "best.json", "field tensor_sha256: is missing")


def test_a_model_card_field_of_the_wrong_type_is_named(tmp_path):
    save_tiny(tmp_path, "default")
    (tmp_path / "default.card.json").write_text(json.dumps({"parameters": "many"}))
    with pytest.raises(CheckpointError, match="default.card.json: field parameters"):
        list_models(tmp_path)
    (tmp_path / "default.card.json").write_text("[1, 2")
    with pytest.raises(CheckpointError, match="default.card.json is not valid JSON"):
        list_models(tmp_path)


def test_a_run_config_with_a_bad_field_stops_resume_in_one_line(tmp_path, folder):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train_config": {"lr": "fast"}}))
    result = runner.invoke(app, ["train", str(folder), "--out", str(run), "--resume"])
    one_line_error(result, "config.json", "field train_config.lr: must be a number")


def test_read_json_names_the_file_and_field(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": {"b": -1}}))
    schema = Obj(required={"a": Obj(required={"b": Range(int, 0)})})
    with pytest.raises(DataError, match=r"x.json: field a.b: must be >= 0, got -1; fix it"):
        read_json(path, schema, error=DataError, hint="fix it")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="x.json is not valid JSON"):
        read_json(path, schema, error=DataError)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="x.json"):
        read_json(path, schema, error=DataError)


# -- The cache -------------------------------------------------------------------------------


def _index(cache: Path) -> Path:
    (found,) = cache.rglob("*.json")
    return found


def test_a_wrong_offset_in_the_cache_index_is_a_miss(folder, tmp_path):
    cache = tmp_path / "cache"
    first = read_folder(folder, cache_dir=cache, workers=1)
    index = json.loads(_index(cache).read_text())
    index["entries"][0]["offset"], index["entries"][1]["offset"] = (
        index["entries"][1]["offset"],
        index["entries"][0]["offset"],
    )
    _index(cache).write_text(json.dumps(index))
    assert load_pack(cache, folder, ReadSettings()) == {}
    again = read_folder(folder, cache_dir=cache, workers=1)
    assert again.report.cached_files == 0
    for a, b in zip(first.rolls, again.rolls, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_entries_that_disagree_with_the_frames_are_a_miss(folder, tmp_path):
    cache = tmp_path / "cache"
    read_folder(folder, cache_dir=cache, workers=1)
    good = _index(cache).read_text()
    for edit in (
        lambda i: i["entries"][0]["report"].update(frames_notes_on=9999),
        lambda i: i["entries"][0].update(length=i["entries"][0]["length"] + 1),
        lambda i: i["entries"][0].update(hash=7),
        lambda i: i["entries"][0]["report"].update(outcome="used", lowest_pitch="C4"),
        lambda i: i.update(entries={}),
    ):
        index = json.loads(good)
        edit(index)
        _index(cache).write_text(json.dumps(index))
        assert load_pack(cache, folder, ReadSettings()) == {}


def test_a_truncated_cache_is_a_miss_and_the_folder_still_reads(folder, tmp_path):
    cache = tmp_path / "cache"
    read_folder(folder, cache_dir=cache, workers=1)
    (frames,) = cache.rglob("*.npz")
    frames.write_bytes(frames.read_bytes()[:-40])
    again = read_folder(folder, cache_dir=cache, workers=1)
    assert again.report.cached_files == 0 and again.report.num_pieces == 2
    assert read_folder(folder, cache_dir=cache, workers=1).report.cached_files == 2


def test_a_read_only_cache_degrades_to_no_cache_with_a_warning(folder, tmp_path, monkeypatch):
    import errno

    from tuneforge.data import cache as cache_module

    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root writes into read-only folders: refuse as the kernel would

        def read_only(path, write):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(cache_module, "_atomic_write", read_only)
    try:
        report = read_folder(folder, cache_dir=cache, workers=1).report
    finally:
        cache.chmod(stat.S_IRWXU)
    assert report.num_pieces == 2
    assert len(report.warnings) == 1 and "cannot be written" in report.warnings[0]
    assert "Permission denied" in report.warnings[0]


def test_a_full_disk_degrades_to_no_cache_with_a_warning(folder, tmp_path, monkeypatch):
    import errno

    from tuneforge.data import cache as cache_module

    def disk_full(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module, "_atomic_write", disk_full)
    report = read_folder(folder, cache_dir=tmp_path / "cache", workers=1).report
    assert report.num_pieces == 2 and "No space left on device" in report.warnings[0]


def test_an_unusable_cache_location_degrades_with_a_warning_in_the_report(folder, tmp_path):
    (tmp_path / "file").write_text("a file where a folder of the cache should be")
    cache = tmp_path / "file" / "cache"
    report = read_folder(folder, cache_dir=cache, workers=1).report
    assert report.num_pieces == 2 and "cannot be written" in report.warnings[0]
    assert report.to_dict()["warnings"] == report.warnings
    result = runner.invoke(app, ["data", "inspect", str(folder), "--cache-dir", str(cache)])
    assert result.exit_code == 0 and "warning:" in result.output


# -- Ctrl-C while parsing --------------------------------------------------------------------


def test_ctrl_c_while_parsing_keeps_what_was_parsed(tmp_path):
    root = tmp_path / "many"
    for index in range(8):
        write_midi(root / f"{index}.mid", [(50 + index, 0, 4 + index)])
    cache = tmp_path / "cache"

    def interrupt_after_five(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read_folder(root, cache_dir=cache, workers=1, on_progress=interrupt_after_five)
    again = read_folder(root, cache_dir=cache, workers=1)
    assert again.report.cached_files == 5 and again.report.num_pieces == 8


# -- mido's errors on real-world files -------------------------------------------------------

# Key signature meta with 20 sharps (mido raises KeySignatureError, not a ValueError).
BAD_KEY = b"\x00\xff\x59\x02\x14\x00" + b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"
# A data byte where the track's first status byte should be (running status with no status).
BAD_RUNNING_STATUS = b"\x00\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"
# A track chunk that says it is longer than the file.
TRUNCATED = _raw_track_file(b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00")[:-5]


@pytest.fixture(params=["key", "running status", "truncated"])
def broken(request, tmp_path) -> Path:
    data = {
        "key": _raw_track_file(BAD_KEY),
        "running status": _raw_track_file(BAD_RUNNING_STATUS),
        "truncated": TRUNCATED,
    }[request.param]
    path = tmp_path / "broken.mid"
    path.write_bytes(data)
    return path


def test_mido_errors_are_one_midi_error_naming_the_file(broken):
    with pytest.raises(MidiError, match="broken.mid"):
        read_midi(broken)


def test_every_reading_command_gives_one_line_naming_the_file(broken, tmp_path, monkeypatch):
    model = save_tiny(tmp_path, "m")
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    for command in (
        ["show", str(broken)],
        ["score", str(broken), "--model", str(model)],
        ["render", str(broken), "--soundfont", str(broken)],
        ["play", str(broken), "--port", "none"],
        ["generate", "--model", str(model), "--primer", str(broken), "--out", str(tmp_path)],
        ["generate", "--model", str(model), "--melody", str(broken), "--out", str(tmp_path)],
    ):
        # render and play read the file before they look for a SoundFont or a port.
        one_line_error(runner.invoke(app, command), "broken.mid")
    one_line_error(runner.invoke(app, ["stats", str(broken)]), "broken.mid failed")


def test_a_broken_file_in_a_folder_is_reported(broken):
    report = read_folder(broken.parent, workers=1).report
    assert outcomes(report)["broken.mid"][0] == "failed"


# -- Duplicate files -------------------------------------------------------------------------


def test_duplicates_are_reported_and_kept_out_of_other_splits(tmp_path):
    root = tmp_path / "dups"
    for index in range(20):
        write_midi(root / f"{index:02d}.mid", [(40 + index, 0, 4 + index)])
    plain = load_dataset(root, cache_dir=tmp_path / "c", workers=1)
    # Copies of every file, under names that sort after the originals.
    for index in range(20):
        shutil.copy(root / f"{index:02d}.mid", root / f"copy-{index:02d}.mid")
    with_copies = load_dataset(root, cache_dir=tmp_path / "c", workers=1)
    assert len(with_copies.report.duplicates) == 20
    assert with_copies.report.duplicates["copy-03.mid"] == "03.mid"
    where = {name: split for split, names in with_copies.names.items() for name in names}
    assert with_copies.duplicates_left_out  # 40 files over 3 splits: some copies cross
    for index in range(20):
        copy = f"copy-{index:02d}.mid"
        assert where.get(copy, where[f"{index:02d}.mid"]) == where[f"{index:02d}.mid"]
        assert (copy in where) != (copy in with_copies.duplicates_left_out)
    # The split draws over all files first, so a file without copies keeps its split.
    train, valid, test = split_indices(40)
    drawn = {}
    names = sorted(where) + with_copies.duplicates_left_out
    for split, indices in (("train", train), ("valid", valid), ("test", test)):
        drawn.update({sorted(names)[i]: split for i in indices})
    assert all(drawn[name] == split for name, split in where.items())
    assert sum(len(v) for v in plain.names.values()) == 20


def test_duplicates_in_one_split_stay_and_inspect_lists_them(tmp_path):
    root = tmp_path / "two"
    write_midi(root / "a.mid", [(60, 0, 4)])
    shutil.copy(root / "a.mid", root / "b.mid")
    result = runner.invoke(
        app, ["data", "inspect", str(root), "--cache-dir", str(tmp_path / "c"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"]["duplicates"] == {"b.mid": "a.mid"}
    assert data["splits"]["train"]["pieces"] == 2 and data["duplicates_left_out"] == []


def test_a_mat_file_that_would_expand_hugely_is_refused_before_loading(tmp_path, monkeypatch):
    import scipy.io

    from tuneforge.data import benchmarks

    rolls = np.empty((1, 1), dtype=object)
    rolls[0, 0] = np.zeros((12_000, 88))  # 8.4 MB of zeros, a few kB compressed
    bomb = tmp_path / "bomb.mat"
    scipy.io.savemat(
        bomb, {f"{s}data": rolls for s in ("train", "valid", "test")}, do_compression=True
    )
    assert bomb.stat().st_size < 200_000
    assert len(load_benchmark(bomb)["train"]) == 1  # under the cap it loads
    monkeypatch.setattr(benchmarks, "MAX_MAT_EXPANDED_BYTES", 4 * 1024**2)
    loads = []
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: loads.append(a))
    with pytest.raises(DataError, match="would expand to more than"):
        load_benchmark(bomb)
    assert loads == []  # refused before scipy decompressed anything
    result = CliRunner().invoke(app, ["data", "inspect", str(bomb)])
    assert result.exit_code != 0 and "would expand" in result.output
    assert "Traceback" not in result.output
