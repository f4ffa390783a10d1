"""What a training run prints: the progress line, the bar on a terminal and the log file."""

from __future__ import annotations

import io
import re

from mww.train.runlog import RunLog, format_duration, progress_line


def test_duration_and_progress_line():
    assert format_duration(3725) == "1:02:05"
    line = progress_line(0, 500, 30000, 134, 500 / 134, 0.23414, 0.89123, 0.001)
    expected = "Phase 1 • 500/30000 • 1.7% • 0:02:14 elapsed • 2:11:46 remaining • "
    assert line == expected + "loss=0.2341 acc=0.8912 lr=0.001000"  # 29 500 steps left at 3.73 steps/s


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    half = progress_line(0, 50, 100, 10, 5.0, 0.5, 0.75, 0.001)
    done = progress_line(1, 100, 100, 20, 5.0, 0.4, 0.8, 0.0001)
    terminal = Terminal()
    log = RunLog(tmp_path / "tty", terminal)
    log.status(half, 50, 100)
    log.line("Validation at step 50:")
    log.status(done, 100, 100)
    log.close()
    shown = terminal.getvalue()
    print(repr(shown[-300:]))
    bar = "[#█]"  # tqdm draws blocks on a UTF-8 terminal, # otherwise
    assert re.search(re.escape(half) + rf" \|{bar}{{10}} {{10}}\|", shown)  # half of the 20-character bar
    assert re.search(re.escape(done) + rf" \|{bar}{{20}}\|", shown)
    assert shown.startswith("\rPhase 1")  # drawn in place
    assert "\rValidation at step 50:\n" in shown  # the bar is cleared, the line printed, the bar redrawn
    assert log.path.read_text().splitlines() == [half, "Validation at step 50:", done]

    plain = io.StringIO()
    log = RunLog(tmp_path / "pipe", plain)
    log.status(half, 50, 100)
    log.line("Validation at step 50:")
    log.close()
    assert plain.getvalue() == f"{half}\nValidation at step 50:\n"
