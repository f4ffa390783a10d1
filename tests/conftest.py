"""Shared fixtures: tiny synthetic audio written into temporary folders."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mww.config.load import config_from_dict
from mww.config.schema import MwwConfig
from mww.device.constants import SAMPLE_RATE_HZ

# Ctrl-C as a terminal delivers it. A test run started in the background (`cmd &` in a script, as some
# CI runners do) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt, in this
# process or in the commands the tests start (an ignored signal stays ignored across exec; a handled
# one is reset to the default). The tests of Ctrl-C handling need the terminal's behaviour.
signal.signal(signal.SIGINT, signal.default_int_handler)


def tone(
    seconds: float, freq: float = 440.0, rate: int = SAMPLE_RATE_HZ, amp: float = 0.3, seed: int = 0
) -> np.ndarray:
    """A tone with a little noise, so the front end has something to chew on."""
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE_HZ, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


@pytest.fixture
def make_wav():
    """Write a tone clip: make_wav(path, seconds=1.0, freq=440, rate=16000, seed=0)."""

    def _make(
        path: Path, seconds: float = 1.0, freq: float = 440.0, rate: int = SAMPLE_RATE_HZ, seed: int = 0
    ) -> Path:
        return write(path, tone(seconds, freq, rate, seed=seed), rate)

    return _make


def dataset_paths(data_root: Path, processed_dir: Path) -> dict[str, str]:
    """The `paths` section for a dataset in the standard layout under `data_root`."""
    folders = {
        "positive_dir": "positive",
        "negative_dir": "negative",
        "hard_negative_dir": "hard_negative",
        "background_dir": "background",
        "rir_dir": "rirs",
        "ambient_dir": "ambient",
        "false_wake_dir": "false_wakes",
    }
    return {**{k: str(data_root / v) for k, v in folders.items()}, "processed_dir": str(processed_dir)}


def make_config(root: Path, **data: object) -> MwwConfig:
    """A config whose dataset folders are the standard ones under `root`."""
    return config_from_dict({"paths": dataset_paths(root, root / "processed"), "data": data})


def build_dataset(root: Path, speakers: int = 10, per_speaker: int = 3, negatives: int = 40) -> None:
    """Tone clips in the dataset layout: speakers x positives, negatives, noise, a RIR, 2 ambient."""
    for s in range(speakers):
        for i in range(per_speaker):
            write(
                root / "positive" / f"spk{s:02d}" / f"{i}.wav", tone(1.0, 300 + 20 * s + i, seed=s * 10 + i)
            )
    for i in range(negatives):
        write(root / "negative" / "speech" / f"n{i}.wav", tone(1.2, 900 + i, seed=1000 + i))
    write(root / "background" / "noise.wav", tone(3.0, 60.0))
    write(root / "rirs" / "r.wav", np.exp(-np.arange(800) / 100.0).astype(np.float32))
    for i in range(2):
        write(root / "ambient" / f"amb{i}.wav", tone(5.0, 150.0 + i))


AUTO_TUNING_COVERED: set[str] = set()


def covers(*keys: str):
    """Mark a test as the one showing the effect of these auto_tuning keys (test_autotune checks all are)."""
    AUTO_TUNING_COVERED.update(keys)
    return lambda test: test


# --------------------------------------------------------------------------- measured figures in the log
# Tests print what they measured (recall, FA/h, uint8 deviations, timings). pytest hides the output of
# passing tests, so it is collected here and shown once at the end of the run, where a CI log keeps it.

_PRINTED: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and report.capstdout.strip():
        _PRINTED.append((report.nodeid, report.capstdout.strip()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _PRINTED:
        return
    terminalreporter.section("figures printed by the tests")
    for nodeid, text in _PRINTED:
        terminalreporter.write_line(nodeid)
        for line in text.splitlines():
            if line.strip():
                terminalreporter.write_line(f"    {line}")
