"""The playback scheduler, panic and port choice, with a recording output and a fake clock."""

from __future__ import annotations

import mido
import pytest

from tuneforge.errors import PlaybackError
from tuneforge.music.events import TimedMessage
from tuneforge.playback import live
from tuneforge.playback.live import MidiOutput, play_events


class _Recorder:
    """Stands in for rtmidi.MidiOut: keeps what is sent, optionally fails on one message."""

    def __init__(self, clock=None, fail_at: int | None = None) -> None:
        self.sent: list[tuple[float, list[int]]] = []
        self.clock = clock
        self.fail_at = fail_at

    def send_message(self, data) -> None:
        if self.fail_at is not None and len(self.sent) == self.fail_at:
            self.fail_at = None
            raise RuntimeError("port vanished")
        self.sent.append((self.clock() if self.clock else 0.0, list(data)))

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


class _FakeClock:
    """A monotonic clock whose sleeps always overshoot, as real sleeps do."""

    def __init__(self, oversleep_s: float) -> None:
        self.now = 100.0
        self.oversleep_s = oversleep_s

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.oversleep_s


def _note(time_s, note, on=True):
    kind = "note_on" if on else "note_off"
    return TimedMessage(time_s, mido.Message(kind, note=note, velocity=80 if on else 0))


def _output(clock=None, fail_at=None) -> MidiOutput:
    return MidiOutput(_Recorder(clock, fail_at), "test", "recorder")


def _panic_tail(sent):
    """The 32 control changes of a panic: sustain off and all notes off on 16 channels."""
    return [[0xB0 | ch, cc, 0] for ch in range(16) for cc in (64, 123)] == [
        m for _, m in sent[-32:]
    ]


def test_lateness_does_not_add_up_over_a_long_piece():
    clock = _FakeClock(oversleep_s=0.002)
    events = [_note(0.1 * i, 60 + i % 12, on=i % 2 == 0) for i in range(200)]
    output = _output(clock)
    report = play_events(events, output, clock=clock, sleep=clock.sleep)
    sent_notes = output.client.sent[:200]
    lateness = [t - 100.0 - e.time_s for (t, _), e in zip(sent_notes, events, strict=True)]
    # Absolute deadlines: each message is late by one oversleep at most, even the last one
    # (relative sleeps would be 200 oversleeps = 0.4 s behind by then).
    assert max(lateness) <= 0.0021
    assert min(lateness) >= 0.0
    assert report.messages_sent == 200
    assert report.max_late_s == pytest.approx(max(lateness))


def test_the_end_of_a_piece_silences_every_channel():
    output = _output()
    play_events([_note(0.0, 60), _note(0.0, 64)], output, clock=lambda: 0.0, sleep=lambda s: None)
    sent = [m for _, m in output.client.sent]
    # Both notes still sound at the end: they get explicit note-offs before the panic.
    assert sent[2:4] == [[0x80, 60, 0], [0x80, 64, 0]]
    assert _panic_tail(output.client.sent)


def test_ctrl_c_releases_the_sounding_notes():
    clock = _FakeClock(oversleep_s=0.0)

    def sleep(seconds):
        if clock.now >= 100.5:
            raise KeyboardInterrupt
        clock.sleep(seconds)

    events = [_note(0.0, 60), _note(0.5, 67), _note(1.0, 60, on=False), _note(2.0, 72)]
    output = _output(clock)
    with pytest.raises(KeyboardInterrupt):
        play_events(events, output, clock=clock, sleep=sleep)
    sent = [m for _, m in output.client.sent]
    assert [0x90, 72, 80] not in sent  # stopped before the last note
    assert [0x80, 60, 0] in sent and [0x80, 67, 0] in sent
    assert _panic_tail(output.client.sent)


def test_an_error_while_playing_still_panics():
    output = _output(fail_at=2)
    with pytest.raises(RuntimeError, match="port vanished"):
        play_events(
            [_note(0.0, 60), _note(0.0, 62), _note(0.0, 64)],
            output,
            clock=lambda: 0.0,
            sleep=lambda s: None,
        )
    sent = [m for _, m in output.client.sent]
    assert [0x80, 60, 0] in sent and [0x80, 62, 0] in sent
    assert _panic_tail(output.client.sent)


def test_all_notes_off_in_the_file_counts_as_release():
    events = [
        _note(0.0, 60),
        TimedMessage(0.1, mido.Message("control_change", control=123, value=0)),
    ]
    clock = _FakeClock(oversleep_s=0.0)
    output = _output(clock)
    play_events(events, output, clock=clock, sleep=clock.sleep)
    assert not any(m[0] == 0x80 for _, m in output.client.sent)


def test_port_matching_prefers_exact_then_substring():
    ports = ["Midi Through:0", "FLUID Synth (123):Synth input port", "synth"]
    assert live._match_port(ports, None) == 0
    assert live._match_port(ports, "synth") == 2
    assert live._match_port(ports, "fluid") == 1
    assert live._match_port(ports, "nothing") is None
    assert live._match_port([], None) is None


def test_no_port_is_a_clear_error(monkeypatch):
    # A JACK server name that nobody runs: the JACK API cannot open, whatever this machine has.
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "tuneforge-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(PlaybackError) as caught:
        live.open_output(api="jack")
    message = str(caught.value)
    assert "jack (unavailable)" in message
    # The three ways out that work without a sound card.
    assert "--synth" in message and "tuneforge render" in message
    assert live.HEADLESS_SYNTH_COMMAND in message


def test_unknown_api_lists_the_choices():
    with pytest.raises(PlaybackError, match="choose one of: auto"):
        live.open_output(api="carrier-pigeon")


def test_port_and_virtual_together_are_refused():
    with pytest.raises(PlaybackError, match="not both"):
        live.open_output("a", virtual="b")


def test_play_to_a_missing_port_says_how_to_get_a_synth(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tests.midi_factory import write_midi
    from tuneforge.cli.app import app

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "tuneforge-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 4)])
    # A named port never falls back to the built-in synth: the user asked for that port.
    result = CliRunner().invoke(app, ["play", str(midi), "--api", "jack", "--port", "fluid"])
    assert result.exit_code == 1
    assert "found no MIDI output port matching 'fluid'" in result.output
    assert "--synth" in result.output and "Traceback" not in result.output


def test_list_ports_without_any_midi_api_fails_and_says_what_to_install(monkeypatch):
    from typer.testing import CliRunner

    from tuneforge.cli.app import app

    monkeypatch.setattr(live, "_open_client", lambda *args, **kwargs: None)  # no API opens
    result = CliRunner().invoke(app, ["play", "--list-ports"])
    assert result.exit_code == 1
    assert "no MIDI API can be opened here" in result.output
    assert "jackd2" in result.output and "snd-seq" in result.output
