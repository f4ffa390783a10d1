"""mww-studio driven in a real headless browser (Debian's chromium and chromedriver, through selenium):
every page opened, two clips uploaded and a take recorded, a tiny training run followed live (the
tab closed and reopened mid-run, a second start refused), the model evaluated, exported, downloaded
and verified, and tried on a recording.

The tests run in order on one studio and one browser. They are skipped, with the reason, only where
no browser is installed (scripts/setup_env.sh installs chromium and chromium-driver where it can).
Each page's screenshot goes into the folder MWW_STUDIO_SCREENSHOTS names, else a temporary folder
(docs/studio.md shows the same pages on a generated demo dataset).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import soundfile as sf

from mww.cli.generate import main as generate_command
from mww.export.verify import verify_model
from tests.conftest import tone, write
from tests.studio.conftest import make_project

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # a container's small /dev/shm would crash the renderer
    "--window-size=1280,1100",
    # a fake microphone (a beep) that needs no permission prompt, for the recording button
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)
STEPS = "300, 100"  # set on the Train page; validations every 100 steps (the project's project.yaml)
studio_choice: dict = {}  # the cutoff and window picked on the Evaluate page, for the Export page


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is pinned in requirements.txt)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            return (
                f"{path} is not installed: no browser to drive. Install Debian's chromium and "
                "chromium-driver (scripts/setup_env.sh does, where it runs as root with apt)"
            )
    return None


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """(url, project root, log file) of mww-studio serving a tiny project, in its own process."""
    root = tmp_path_factory.mktemp("studio")
    project = make_project(root, steps=[60, 20], eval_every=100)
    (project.root / "dataset/negative/speech/broken.wav").write_bytes(b"RIFF....WAVE not audio")
    log = root / "studio.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mww.cli.studio", "--port", "0", "--project", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    try:
        deadline = time.time() + 60
        while not (found := re.search(r"serving on (http://\S+)", log.read_text())):
            assert process.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.2)
        yield found[1].rstrip("/"), project.root, log
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait(driver, condition, seconds: float = 60, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.25).until(condition, message=what)


def open_page(driver, url: str, page: str) -> None:
    driver.get(f"{url}/{page}")
    wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == page, 30, page)


def text(driver, css: str) -> str:
    return driver.find_element("css selector", css).text


def message(driver) -> str:
    return text(driver, "#message")


def screenshot(driver, name: str) -> None:
    """The page as a small PNG (256 colours) in MWW_STUDIO_SCREENSHOTS, else a temporary folder."""
    from PIL import Image

    folder = Path(os.environ.get("MWW_STUDIO_SCREENSHOTS") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"studio-{name}.png"
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(target))
    Image.open(target).convert("RGB").quantize(colors=256).save(target, optimize=True)
    print(f"screenshot {target} ({target.stat().st_size // 1024} KiB)")


def test_dataset_page(studio, browser, tmp_path, capsys):
    url, root, _ = studio
    open_page(browser, url, "dataset")
    assert "24" in text(browser, "#folder-counts") and "spk05" in text(browser, "#speaker-counts")
    # Two clips uploaded at 44.1 kHz stereo, stored as the device's audio.
    clips = [write(tmp_path / f"erin {i}.wav", tone(1.0, 500 + 50 * i, 44100), 44100) for i in range(2)]
    browser.find_element("id", "speaker").send_keys("erin")
    browser.find_element("id", "upload-files").send_keys("\n".join(str(c) for c in clips))
    browser.find_element("id", "upload-button").click()
    wait(browser, lambda d: "Uploaded 2 file(s)" in message(d), 30, "the upload")
    stored = sorted((root / "dataset/positive/erin").iterdir())
    assert [p.name for p in stored] == ["erin 0.wav", "erin 1.wav"]
    assert {(sf.info(str(p)).samplerate, sf.info(str(p)).channels) for p in stored} == {(16000, 1)}
    wait(browser, lambda d: "erin" in text(d, "#speaker-counts"), 10, "the new speaker")
    # One take from the (fake) microphone.
    browser.find_element("id", "record-start").click()
    wait(browser, lambda d: "recording" in text(d, "#record-status"), 10, "the recording")
    time.sleep(1.5)
    browser.find_element("id", "record-stop").click()
    wait(browser, lambda d: "erin_001.wav" in message(d), 30, "the take")
    take = sf.info(str(root / "dataset/positive/erin/erin_001.wav"))
    print(f"recorded take: {take.duration:.2f} s, {take.samplerate} Hz, {take.subtype}")
    assert take.samplerate == 16000 and take.subtype == "PCM_16" and take.duration > 1.0
    # The ingestion report lists the file it skipped, and why.
    browser.find_element("id", "prepare-button").click()
    wait(browser, lambda d: "features:" in text(d, "#prepare-output"), 120, "mww-prepare")
    assert "broken.wav" in text(browser, "#skipped-files") and "unreadable" in text(browser, "#skipped-files")
    # A failing action shows the command's own paragraph.
    field = browser.find_element("id", "gen-wake-word")
    field.clear()
    field.send_keys("123")
    browser.find_element("id", "generate-button").click()
    wait(browser, lambda d: "mww-generate: error:" in message(d), 30, "the generator's refusal")
    assert generate_command(["--output", str(tmp_path / "gen"), "--wake-word", "123"]) == 2
    assert message(browser) == capsys.readouterr().err.strip()
    browser.find_element("id", "clip-speaker").find_element("css selector", "option[value=erin]").click()
    wait(browser, lambda d: "3 clip(s)" in text(d, "#clip-list"), 10, "erin's clips")
    assert len(browser.find_elements("css selector", "#clips-table audio")) == 3
    browser.execute_script("document.getElementById('message').hidden = true")
    screenshot(browser, "dataset")


def _state(driver) -> str:
    return text(driver, "#train-state")


def _step(driver) -> int:
    found = re.search(r"step (\d+)/", text(driver, "#train-progress-text"))
    return int(found[1]) if found else 0


def test_train_page(studio, browser):
    url, root, _ = studio
    open_page(browser, url, "train")
    steps = browser.find_element("id", "training-steps")
    steps.clear()
    steps.send_keys(STEPS)
    browser.find_element("id", "save-settings").click()
    wait(browser, lambda d: "Saved" in message(d), 10, "the settings")
    assert "training_steps:\n  - 300\n  - 100" in (root / "project.yaml").read_text()
    # Start in a second tab, then close that tab mid-run.
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    open_page(browser, url, "train")
    browser.find_element("id", "train-start").click()
    wait(browser, lambda d: _step(d) > 0, 120, "the first progress line")
    seen = _step(browser)
    browser.close()
    browser.switch_to.window(first)
    open_page(browser, url, "train")
    wait(browser, lambda d: _step(d) > seen, 60, "progress after reopening")
    assert _state(browser) == "running", text(browser, "#train-message")
    print(f"reopened: step {seen} when the tab closed, {_step(browser)} now, still running")
    assert "remaining" in text(browser, "#train-progress-text")
    # A second start is refused with a message naming the first.
    browser.find_element("id", "train-start").click()
    wait(browser, lambda d: "already going" in message(d), 10, "the refusal")
    refusal = message(browser)
    print(refusal)
    assert refusal.startswith("mww-train: error: A training run is already going") and "process" in refusal
    wait(
        browser, lambda d: len(d.find_elements("css selector", "#plot-recall circle.dot")) >= 2, 120, "plots"
    )
    screenshot(browser, "train")
    wait(browser, lambda d: _state(d) != "running", 180, "the end of the run")
    assert _state(browser) == "finished", text(browser, "#train-console")
    assert _step(browser) == 400
    assert browser.find_elements("css selector", "#plot-loss polyline.series")
    assert (
        len(browser.find_elements("css selector", "#plot-fah circle.dot")) == 2 * 4
    )  # two series, 4 validations
    assert len(browser.find_elements("css selector", "#validation-history tbody tr")) == 4


def test_evaluate_page(studio, browser):
    url, _, _ = studio
    open_page(browser, url, "evaluate")
    browser.find_element("id", "eval-run").click()
    drawn = "#det-curve polyline.series"
    wait(
        browser, lambda d: d.find_elements("css selector", drawn) or "error" in message(d), 240, "evaluation"
    )
    assert "error" not in message(browser), message(browser)
    assert browser.find_elements("css selector", "#score-histogram rect.bar")
    assert len(browser.find_elements("css selector", "#per-speaker tbody tr")) >= 1
    assert "positives" in text(browser, "#per-set")
    before = text(browser, "#pick-readout")
    slider = browser.find_element("id", "pick-cutoff")
    browser.execute_script("arguments[0].value = 10; arguments[0].dispatchEvent(new Event('input'))", slider)
    after = text(browser, "#pick-readout")
    print(f"picker: {before} -> {after}")
    picked = re.match(
        r"cutoff (0\.\d+), window (\d+): recall [\d.]+ %, [\d.∞]+ FA/h \(ESP32 detector\)", after
    )
    assert picked and after != before, after
    browser.find_element("id", "pick-use").click()
    wait(browser, lambda d: f"The Export page will use cutoff {picked[1]}" in message(d), 10, "the choice")
    studio_choice["cutoff"], studio_choice["window"] = float(picked[1]), picked[2]
    screenshot(browser, "evaluate")


def test_export_page(studio, browser):
    url, root, _ = studio
    open_page(browser, url, "export")
    assert (
        float(browser.find_element("id", "export-cutoff").get_attribute("value")) == studio_choice["cutoff"]
    )
    assert browser.find_element("id", "export-window").get_attribute("value") == studio_choice["window"]
    cutoff = browser.find_element("id", "export-cutoff")
    cutoff.clear()
    cutoff.send_keys("0.9")
    browser.find_element("id", "export-run").click()
    wait(browser, lambda d: d.find_elements("id", "verify-verdict"), 240, "the export")
    verdict = text(browser, "#verify-verdict")
    print(verdict)
    assert verdict.startswith("mww-verify: all") and not browser.find_elements(
        "css selector", "#verify-checks li.fail"
    )
    assert "micro_wake_word:" in text(browser, "#esphome-yaml") and "probability_cutoff: 0.9" in text(
        browser, "#esphome-yaml"
    )
    for name in ("hey_computer.tflite", "hey_computer.json"):
        browser.find_element("link text", name).click()
    downloads = browser.downloads
    wait(
        browser,
        lambda d: {"hey_computer.tflite", "hey_computer.json"} <= {p.name for p in downloads.iterdir()},
        30,
    )
    time.sleep(0.5)  # the last bytes of the second file
    result = verify_model(downloads / "hey_computer.tflite", downloads / "hey_computer.json")
    print(f"downloaded model: {len(result.checks)} checks, ok={result.ok}")
    assert (
        result.ok
        and (downloads / "hey_computer.tflite").read_bytes()
        == (root / "models/exported/hey_computer.tflite").read_bytes()
    )
    screenshot(browser, "export")


def test_try_page(studio, browser):
    url, root, _ = studio
    open_page(browser, url, "try")
    clip = root / "dataset/positive/spk00/0.wav"
    browser.find_element("id", "try-file").send_keys(str(clip))
    browser.find_element("id", "try-run").click()
    wait(browser, lambda d: d.find_elements("css selector", "#try-trace polyline.series"), 120, "the trace")
    summary = text(browser, "#try-summary")
    print(summary)
    assert re.match(r"\d+ detections? of \"Hey Computer\" in 1\.00 s", summary)
    assert (root / "tryit/0.wav").is_file()
    screenshot(browser, "try")


def test_pages_answer_without_errors(studio):
    _, _, log = studio
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
