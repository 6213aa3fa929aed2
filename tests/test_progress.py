"""The one progress display: a status line every few seconds where stderr is no terminal, honest rates."""
import io

from livestyle.io.progress import Progress, format_duration, format_rate


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rates_below_one_per_second_are_seconds_per_unit():
    assert format_rate(3.14, "frame") == "3.1 fps"
    assert format_rate(12.0, "it") == "12.0 it/s"
    assert format_rate(1 / 27.4, "frame") == "27.4 s/frame"
    assert format_rate(0.0, "frame") == "– frame/s"
    assert format_duration(42.4) == "0:42" and format_duration(725) == "12:05" and format_duration(7390) == "2:03:10"


def test_a_log_gets_a_status_line_every_interval_not_a_redraw_per_step():
    clock, log = FakeClock(), io.StringIO()
    with Progress(10, desc="video x4", unit="frame", stream=log, interval=10.0, clock=clock) as progress:
        for _ in range(10):
            clock.now += 27.0  # SR on a slow CPU: 27 s a frame
            progress.update()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10  # one line per frame: each took longer than 10 s
    assert lines[0] == "video x4: 1/10 frames (10%), 27.0 s/frame, ETA 4:03"
    assert lines[-1] == "video x4: 10/10 frames (100%), 27.0 s/frame, took 4:30"


def test_fast_steps_are_summed_into_few_lines_with_an_eta():
    clock, log = FakeClock(), io.StringIO()
    progress = Progress(1000, desc="train wave", unit="it", stream=log, interval=10.0, clock=clock)
    for step in range(1, 1001):
        clock.now += 0.125  # 8 it/s: a line every 80 steps, and one at the end
        progress.update()
        if step == 150:
            progress.set_postfix("loss 2.5")
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 13, lines
    assert lines[0] == "train wave: 80/1000 it (8%), 8.0 it/s, ETA 1:55"
    assert lines[1] == "train wave: 160/1000 it (16%), 8.0 it/s, ETA 1:45, loss 2.5"
    assert lines[-1] == "train wave: 1000/1000 it (100%), 8.0 it/s, took 2:05, loss 2.5"


def test_a_short_run_writes_nothing_to_a_log_and_a_disabled_one_nothing_anywhere():
    clock, log = FakeClock(), io.StringIO()
    with Progress(5, desc="short", stream=log, clock=clock) as progress:
        progress.update(5)
    assert log.getvalue() == ""
    with Progress(5, desc="quiet", stream=Terminal(), enabled=False, clock=clock) as progress:
        clock.now += 60
        progress.update(5)
        progress.message("hello")
        assert progress.stream.getvalue() == ""


def test_a_resumed_run_counts_its_rate_from_where_it_started():
    clock, log = FakeClock(), io.StringIO()
    progress = Progress(100, desc="train", initial=50, stream=log, interval=1.0, clock=clock)
    clock.now += 10
    progress.update(10)
    assert log.getvalue().strip() == "train: 60/100 it (60%), 1.0 it/s, ETA 0:40"


def test_unknown_totals_have_no_eta():
    clock, log = FakeClock(), io.StringIO()
    progress = Progress(None, desc="video", unit="frame", stream=log, interval=1.0, clock=clock)
    clock.now += 2
    progress.update(1)
    assert log.getvalue().strip() == "video: 1 frame, 2.0 s/frame"


def test_a_terminal_gets_tqdm_s_bar():
    clock, term = FakeClock(), Terminal()
    with Progress(4, desc="bar", unit="frame", stream=term, clock=clock) as progress:
        progress.update(2)
        progress.message("a note")
    text = term.getvalue()
    assert "\r" in text and "bar:" in text and "2/4" in text and "a note" in text
