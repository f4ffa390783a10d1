"""Side by side: this project against the reference trainer (kahrendt/microWakeWord) on the same data.

Usage (from the repository root, with the project's environment):

    .venv/bin/python benchmarks/compare_reference.py --dataset DATA --test TEST \\
        [--steps 10000] [--batch 128] [--preset standard] [--work ./benchmark_runs] \\
        [--reference-dir ../shared/reference] [--python python3]

    # a held-out test folder from another generated dataset (e.g. mww-generate --seed 2):
    .venv/bin/python benchmarks/compare_reference.py --make-test OTHER_DATASET --test TEST [--dataset DATA]

DATA is a dataset in this project's layout (positive/<speaker>/, negative/, hard_negative/, background/,
rirs/, ambient/). TEST holds held-out audio: TEST/positives/**.wav (the wake word) and TEST/ambient/**.wav
(long recordings without it).

Both sides train for --steps steps at --batch clips a batch on DATA:

* the reference, as its RECIPE.md in --reference-dir says: its own virtual environment (built once under
  --work, reused while its stamp matches), gen_features.py on DATA (features cached under --work per
  dataset content), training_parameters.yaml with the placeholders filled and steps/batch set, then the
  training command of train.sh, which also exports the int8 streaming model;
* this project: `mww-prepare`, `mww-train` and `mww-export` with --preset and an override pointing at
  DATA, its phases scaled to --steps in the preset's proportions.

Both exported models are then measured by the same device-faithful evaluator, `mww-evaluate --tflite
--positives TEST/positives --ambient TEST/ambient --json` (TFLite Micro, ESPHome's detector). From its
sweep over cutoffs and windows it takes, for each budget of false activations per hour, the best recall
at or under that budget, leaving out the cutoffs 0 and 1 and every cutoff that the model's output on
digital silence exceeds (the positives are streamed with silence around them; there the silence would
count as the wake word). One table is printed: recall at 0.5 / 1 / 2 / 5 / 10 FA/h for each side and
their ratio, model size, tensor arena (measured in TFLite Micro) and the wall time of each pipeline
(features, training + export); then this project's shipped cutoff and window and the FA/h they give on
TEST's ambient audio under both detection rules. The table, both evaluations and every log are kept in
--work/runs/<time>/.

To measure a change to this project's recipe against the same reference model, pass
--project-override YAML (config sections and keys that replace the preset's) and --reuse-reference RUN
(an earlier run folder of the same dataset, test, steps and batch): only this project's side is trained.

The reference's features are cached per dataset; when they are reused, their time is the one measured
when they were made (marked "cached"). The reference's training command also runs its own test of the
exported model, which counts in its training + export time. Exit status: 0 when it worked, 2 with one
paragraph for bad input or a step that failed (the paragraph names its log), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mww.cli import Parser, checked, run_command
from mww.errors import MwwError
from mww.synth.layout import OVERRIDE_KEYS, SUBFOLDERS

PROG = "compare_reference"
ROOT = Path(__file__).resolve().parents[1]
DATASET_FOLDERS = SUBFOLDERS  # the dataset layout, as mww-generate writes it
REFERENCE_FILES = ("RECIPE.md", "gen_features.py", "training_parameters.yaml", "train.sh")
BUDGETS_FAH = (0.5, 1.0, 2.0, 5.0, 10.0)
MODEL_NAME = "wake_word"
SILENCE_S = 8  # digital silence streamed to find a model's output on it (longer than any input window)

# RECIPE.md's environment, step by step (the tarball is extracted and installed after these).
REFERENCE_PIP_STEPS: tuple[tuple[str, ...], ...] = (
    (
        "tensorflow",
        "pymicro-features==1.0.0",
        "datasets<4",
        "audiomentations",
        "mmap_ninja",
        "webrtcvad-wheels",
        "audio_metadata",
        "pyyaml",
        "soundfile",
        "librosa",
        "tensorboard",
    ),
    ("tensorflow==2.18.1", "keras==3.8.0"),  # the recipe: TF 2.21 / Keras 3.15 crash at its first validation
)
REFERENCE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "-1"}
# Where the reference's training command writes its int8 streaming model, under its train_dir.
REFERENCE_TFLITE = Path("tflite_stream_state_internal_quant") / "stream_state_internal_quant.tflite"
# The reference model of train.sh, in this project's model config (for the evaluator's stride and
# input length), and the clip length of training_parameters.yaml.
REFERENCE_MODEL = {
    "architecture": "mixednet",
    "first_conv_filters": 32,
    "first_conv_kernel_size": 5,
    "stride": 3,
    "pointwise_filters": "64,64,64,64",
    "mixconv_kernel_sizes": "[5],[7,11],[9,15],[23]",
    "repeat_in_block": "1,1,1,1",
    "residual_connection": "0,0,0,0",
}
REFERENCE_CLIP_MS = 1500


class BenchError(MwwError):
    """Bad input or a failed step, in one paragraph (exit status 2)."""


# --------------------------------------------------------------------------- small helpers


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def run_logged(
    what: str,
    cmd: Sequence[str | Path],
    log: Path,
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdout: Path | None = None,
) -> float:
    """Run `cmd` with its output in `log` (its standard output in `stdout` when given); its wall time in
    seconds, or BenchError naming the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    start = time.monotonic()
    with log.open("w") as out, stdout.open("w") if stdout else contextlib.nullcontext(out) as std:
        out.write("$ " + " ".join(str(c) for c in cmd) + "\n")
        out.flush()
        try:
            code = subprocess.run(
                [str(c) for c in cmd], cwd=cwd, env=full_env, stdout=std, stderr=out
            ).returncode
        except OSError as exc:
            raise BenchError(
                f"{what} could not be started ({exc}). The command is the first line of {log}."
            ) from None
    if code != 0:
        tail = last_line(log)
        raise BenchError(
            f"{what} failed with exit status {code}. Its whole output is in {log}"
            + (f"; its last line: {tail}" if tail else "")
            + ". Fix the cause and run the benchmark again (a built environment and made features are "
            "reused)."
        )
    return time.monotonic() - start


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def mww_bin(name: str) -> Path:
    """This project's command `name`, from the environment running this script or the repo's .venv."""
    for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        if (folder / name).is_file():
            return folder / name
    raise BenchError(
        f"The command {name} was found neither beside {sys.executable} nor in {ROOT / '.venv' / 'bin'}. "
        "Run this benchmark with the project's environment: .venv/bin/python benchmarks/compare_reference.py."
    )


# --------------------------------------------------------------------------- checking the input


def check_dataset(dataset: Path) -> dict[str, int]:
    """WAV files per folder of a dataset in this project's layout; BenchError when one is missing."""
    if not dataset.is_dir():
        raise BenchError(
            f"The dataset folder {dataset} does not exist. Pass --dataset with a folder in this project's "
            "layout (positive/<speaker>/, negative/, hard_negative/, background/, rirs/, ambient/), for "
            "example one made by mww-generate --output DIR."
        )
    counts = {}
    for name in DATASET_FOLDERS:
        folder = dataset / name
        counts[name] = len(wav_files(folder)) if folder.is_dir() else 0
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise BenchError(
            f"The dataset {dataset} has no WAV files in {', '.join(f'{n}/' for n in empty)}. Both trainers "
            "need all six folders (positive/<speaker>/, negative/, hard_negative/, background/, rirs/, "
            "ambient/) with 16 kHz WAV files; the reference reads .wav files only."
        )
    return counts


def check_test(test: Path) -> dict[str, int]:
    if not test.is_dir():
        raise BenchError(
            f"The test folder {test} does not exist. Pass --test with a folder holding positives/ (the wake "
            "word) and ambient/ (long recordings without it), or make one from another generated dataset "
            f"with --make-test OTHER_DATASET --test {test}."
        )
    counts = {}
    for name in ("positives", "ambient"):
        folder = test / name
        counts[name] = len(wav_files(folder)) if folder.is_dir() else 0
        if counts[name] == 0:
            raise BenchError(
                f"The test folder {test} has no WAV files under {name}/. It needs positives/ (recordings of "
                "the wake word, one take a file) and ambient/ (hours without it), both 16 kHz mono 16-bit; "
                "--make-test OTHER_DATASET builds one from a dataset made by mww-generate."
            )
    return counts


def check_reference_dir(ref_dir: Path) -> None:
    missing = [name for name in REFERENCE_FILES if not (ref_dir / name).is_file()]
    tarballs = sorted(ref_dir.glob("microWakeWord-*.tar.gz")) if ref_dir.is_dir() else []
    if missing or len(tarballs) != 1:
        what = (
            ", ".join(missing) if missing else f"{len(tarballs)} microWakeWord-*.tar.gz tarballs (one needed)"
        )
        raise BenchError(
            f"The reference folder {ref_dir} lacks {what}. Pass --reference-dir with the folder holding "
            f"RECIPE.md, gen_features.py, training_parameters.yaml, train.sh and the microWakeWord tarball."
        )


def scaled_phases(preset: str, steps: int) -> list[int]:
    """The preset's phase lengths scaled to `steps` in total, in the preset's proportions."""
    from mww.config.load import load_preset

    phases = list(load_preset(preset).training.training_steps)
    if steps < len(phases):
        raise BenchError(f"--steps {steps} is fewer than the {len(phases)} phases of the preset {preset}.")
    total = sum(phases)
    exact = [steps * p / total for p in phases]
    scaled = [max(1, int(x)) for x in exact]
    order = sorted(range(len(phases)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    for i in order[: steps - sum(scaled)]:
        scaled[i] += 1
    while sum(scaled) > steps:  # only when a phase was raised to 1
        scaled[scaled.index(max(scaled))] -= 1
    return scaled


# --------------------------------------------------------------------------- the reference side


def reference_env(work: Path, ref_dir: Path, python: str) -> tuple[Path, float | None, float]:
    """The reference's virtual environment (built as RECIPE.md says, or reused while its stamp matches):
    its folder, the seconds spent building it now (None when reused) and when it was built."""
    env_dir = work / "reference-env"
    venv, stamp_path = env_dir / "venv", env_dir / "stamp.json"
    tarball = sorted(ref_dir.glob("microWakeWord-*.tar.gz"))[0]
    wanted = {
        "tarball": tarball.name,
        "tarball_sha256": sha256_file(tarball),
        "python": python,
        "pip_steps": [list(step) for step in REFERENCE_PIP_STEPS],
    }
    stamp = read_json(stamp_path)
    if isinstance(stamp, dict) and stamp.get("recipe") == wanted and (venv / "bin" / "python").is_file():
        say(f"reference environment: reused {venv} (built in {stamp.get('seconds', 0):.0f} s)")
        return venv, None, float(stamp.get("seconds", 0.0))
    if env_dir.exists():
        shutil.rmtree(env_dir)
    env_dir.mkdir(parents=True)
    log = env_dir / "build.log"
    say(f"reference environment: building it in {venv} (several minutes; log: {log})")
    start = time.monotonic()
    run_logged("Creating the reference's virtual environment", [python, "-m", "venv", venv], log, cwd=env_dir)
    pip = [venv / "bin" / "python", "-m", "pip", "install"]
    for i, packages in enumerate(REFERENCE_PIP_STEPS, 1):
        step_log = env_dir / f"pip_{i}.log"
        run_logged(
            f"Installing the reference's packages (step {i})", [*pip, *packages], step_log, cwd=env_dir
        )
    with tarfile.open(tarball) as tar:
        tar.extractall(env_dir, filter="data")
    source = next((p for p in env_dir.iterdir() if p.is_dir() and (p / "microwakeword").is_dir()), None)
    if source is None:
        raise BenchError(
            f"The tarball {tarball} holds no microwakeword package folder; is it the right file?"
        )
    run_logged(
        "Installing the reference trainer",
        [*pip, "--no-deps", "-e", source],
        env_dir / "pip_3.log",
        cwd=env_dir,
    )
    seconds = time.monotonic() - start
    write_json(stamp_path, {"recipe": wanted, "seconds": seconds, "source": str(source)})
    say(f"reference environment: built in {seconds:.0f} s")
    return venv, seconds, seconds


def dataset_key(dataset: Path, gen_features: Path) -> str:
    """A digest of the dataset's WAV files (path, size, modification time) and gen_features.py."""
    digest = hashlib.sha256(str(dataset.resolve()).encode())
    digest.update(sha256_file(gen_features).encode())
    for name in DATASET_FOLDERS:
        for path in wav_files(dataset / name):
            st = path.stat()
            digest.update(f"{path.relative_to(dataset)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _link_flat(files: list[Path], root: Path, into: Path) -> None:
    """Symlink each file of `files` (found under `root`) into `into`, named by its path under `root`."""
    into.mkdir(parents=True, exist_ok=True)
    for path in files:
        (into / "__".join(path.relative_to(root).parts)).symlink_to(path.resolve())


def reference_view(dataset: Path, view: Path) -> None:
    """The dataset laid out as gen_features.py reads it, as symlinks: positive/**.wav and background/,
    rirs/ as they are; every negative WAV flat in negative/speech/, hard negatives and ambient flat."""
    if view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    for name in ("positive", "background", "rirs"):
        (view / name).symlink_to((dataset / name).resolve(), target_is_directory=True)
    _link_flat(wav_files(dataset / "negative"), dataset / "negative", view / "negative" / "speech")
    for name in ("hard_negative", "ambient"):
        _link_flat(wav_files(dataset / name), dataset / name, view / name)


def reference_features(work: Path, dataset: Path, ref_dir: Path, venv: Path) -> tuple[Path, float, bool]:
    """gen_features.py's features of `dataset` (made now or reused): the folder, their time, reused."""
    gen = ref_dir / "gen_features.py"
    cache = work / "reference-features" / dataset_key(dataset, gen)
    features, stamp_path = cache / "features", cache / "stamp.json"
    stamp = read_json(stamp_path)
    if isinstance(stamp, dict) and features.is_dir():
        say(f"reference features: reused {features} (made in {stamp['seconds']:.0f} s)")
        return features, float(stamp["seconds"]), True
    if cache.exists():
        shutil.rmtree(cache)
    reference_view(dataset, cache / "dataset_view")
    log = cache / "gen_features.log"
    say(f"reference features: gen_features.py on {dataset} (log: {log})")
    env = {**REFERENCE_ENV, "DATASET": str(cache / "dataset_view"), "FEATURES": str(features)}
    seconds = run_logged(
        "The reference's feature generation (gen_features.py)",
        [venv / "bin" / "python", gen],
        log,
        cwd=cache,
        env=env,
    )
    write_json(stamp_path, {"dataset": str(dataset.resolve()), "seconds": seconds})
    say(f"reference features: {seconds:.0f} s")
    return features, seconds, False


def reference_train(
    run: Path, ref_dir: Path, venv: Path, features: Path, steps: int, batch: int
) -> tuple[Path, float]:
    """training_parameters.yaml and train.sh with the placeholders filled, run: the exported .tflite and
    the wall time."""
    rdir = run / "reference"
    rdir.mkdir(parents=True)
    text = (ref_dir / "training_parameters.yaml").read_text()
    text = text.replace("<baseline-dir>/work/features", str(features))
    text = text.replace("<baseline-dir>/work/trained_models", str(rdir / "trained_models"))
    script = (ref_dir / "train.sh").read_text()
    script = script.replace("<baseline-dir>/work", str(rdir)).replace("<baseline-dir>/venv", str(venv))
    if "<baseline-dir>" in text + script:
        raise BenchError(
            f"training_parameters.yaml or train.sh in {ref_dir} has a <baseline-dir> placeholder this "
            "benchmark does not know how to fill; update compare_reference.py to its new layout."
        )
    params = yaml.safe_load(text)
    params["training_steps"] = [steps]
    params["batch_size"] = batch
    (rdir / "training_parameters.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (rdir / "train.sh").write_text(script)
    log = rdir / "train.log"
    say(f"reference: training {steps} steps at batch {batch}, then its export (log: {log})")
    seconds = run_logged(
        "The reference's training command (train.sh)",
        ["bash", rdir / "train.sh", rdir / "training_parameters.yaml"],
        log,
        cwd=rdir,
    )
    train_dir = Path(params["train_dir"])
    tflite = train_dir / REFERENCE_TFLITE
    if not tflite.is_file():
        found = sorted(train_dir.rglob("*stream*quant*.tflite"))
        if not found:
            raise BenchError(
                f"The reference's training command finished but wrote no int8 streaming model under "
                f"{train_dir} (expected {tflite}). Its output is in {log}."
            )
        tflite = found[0]
    say(f"reference: trained and exported in {seconds:.0f} s: {tflite}")
    return tflite, seconds


def reference_manifest(tflite: Path, rdir: Path) -> tuple[Path, Path]:
    """A copy of the reference model with a v2 manifest beside it (the config's cutoff and window; the
    sweep does not depend on them) and the override that describes its network to the evaluator."""
    from mww.config.load import load_preset
    from mww.device.tflm_arena import declared_arena_size, measure_tensor_arena
    from mww.export.manifest import build_manifest

    model = rdir / "reference.tflite"
    shutil.copyfile(tflite, model)
    config = load_preset("standard")
    arena = declared_arena_size(measure_tensor_arena(model.read_bytes()))
    manifest = build_manifest(
        model.name, config, arena, config.export.probability_cutoff, config.export.sliding_window_size
    )
    manifest_path = model.with_suffix(".json")
    write_json(manifest_path, manifest)
    override = rdir / "evaluate_override.yaml"
    override.write_text(
        yaml.safe_dump({"hardware": {"clip_duration_ms": REFERENCE_CLIP_MS}, "model": REFERENCE_MODEL})
    )
    return manifest_path, override


# --------------------------------------------------------------------------- this project's side


def project_pipeline(
    run: Path, dataset: Path, preset: str, phases: list[int], batch: int, extra: dict[str, Any] | None = None
) -> tuple[Path, Path, dict[str, float]]:
    """mww-prepare, mww-train and mww-export on `dataset`: the model, its override, the times. `extra`:
    config sections whose keys replace those of the preset (a change to measure)."""
    pdir = run / "project"
    pdir.mkdir(parents=True)
    override = pdir / "override.yaml"
    paths = {key: str((dataset / name).resolve()) for name, key in OVERRIDE_KEYS.items()}
    paths |= {
        "processed_dir": str(pdir / "processed"),
        "checkpoint_dir": str(pdir / "checkpoints"),
        "export_dir": str(pdir / "exported"),
    }
    sections: dict[str, dict[str, Any]] = {
        "paths": paths,
        "training": {"training_steps": phases, "batch_size": batch},
        "performance": {
            "tensorboard_log_dir": str(pdir / "logs"),
            "profile_output_dir": str(pdir / "profiles"),
        },
    }
    for section, keys in (extra or {}).items():
        sections.setdefault(section, {}).update(keys)
    override.write_text(yaml.safe_dump(sections, sort_keys=False))
    config = ["--config", preset, "--override", override]
    times = {}
    say(f"project: mww-prepare (features; log: {pdir / 'prepare.log'})")
    times["features"] = run_logged(
        "mww-prepare", [mww_bin("mww-prepare"), *config, "--quiet"], pdir / "prepare.log", cwd=pdir
    )
    say(
        f"project: mww-train, {' + '.join(map(str, phases))} steps at batch {batch} "
        f"(log: {pdir / 'train.log'})"
    )
    times["training"] = run_logged(
        "mww-train", [mww_bin("mww-train"), *config, "--quiet"], pdir / "train.log", cwd=pdir
    )
    checkpoint = pdir / "checkpoints" / "best_weights.weights.h5"
    say(f"project: mww-export (log: {pdir / 'export.log'})")
    times["export"] = run_logged(
        "mww-export",
        [mww_bin("mww-export"), "--checkpoint", checkpoint, *config, "--model-name", MODEL_NAME],
        pdir / "export.log",
        cwd=pdir,
    )
    tflite = pdir / "exported" / f"{MODEL_NAME}.tflite"
    if not tflite.is_file():
        raise BenchError(
            f"mww-export finished but {tflite} is missing; its output is in {pdir / 'export.log'}."
        )
    say(f"project: done in {sum(times.values()):.0f} s: {tflite}")
    return tflite, override, times


# --------------------------------------------------------------------------- measuring both models


def evaluate(
    name: str, tflite: Path, manifest: Path, config: list[str | Path], test: Path, run: Path
) -> dict:
    """mww-evaluate's folder mode on TEST, as JSON (kept in run/evaluation/<name>.json)."""
    folder = run / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    out, log = folder / f"{name}.json", folder / f"{name}.log"
    say(f"{name}: mww-evaluate on {test} (log: {log})")
    cmd = [mww_bin("mww-evaluate"), "--tflite", tflite, "--manifest", manifest, *config]
    cmd += ["--positives", test / "positives", "--ambient", test / "ambient", "--json"]
    run_logged(f"mww-evaluate of the {name} model", cmd, log, cwd=folder, stdout=out)
    result = read_json(out)
    if not isinstance(result, dict) or "sweep" not in result:
        raise BenchError(f"mww-evaluate of the {name} model wrote no JSON with a sweep to {out}; see {log}.")
    return result


def silence_output(tflite: Path, manifest: Path) -> int:
    """The model's highest uint8 output on digital silence, once its input window holds nothing else
    (`mww.device.features.silence_output_u8`, run in TFLite Micro)."""
    from mww.device.features import silence_output_u8
    from mww.device.runtime import load_wake_word_model, stream_outputs

    model = load_wake_word_model(tflite, manifest)
    return silence_output_u8(lambda streams: [stream_outputs(model, s) for s in streams], SILENCE_S)


def best_recall(sweep: dict, budget: float, silence_u8: int) -> dict[str, float]:
    """The highest recall over every window and cutoff of ESPHome's sweep with FA/h at most `budget`
    (ties: the lower FA/h, then the higher cutoff).

    Left out: the cutoffs 0 and 1 (the detector never fires there on its own; a positive, heard by a
    detector that has been listening, counts as detected at 0), and every cutoff that the model's output
    on digital silence exceeds: the positives are streamed with silence before and after them, so such a
    cutoff counts the silence as the wake word, while ambient audio that never falls below it never
    re-arms the detector (no false activation).
    """
    from mww.device.detection import cutoff_to_uint8

    best = {"recall": 0.0, "fah": 0.0, "cutoff": 1.0, "window": 0}
    for window, curve in sweep["windows"].items():
        for cutoff, recall, fah in zip(sweep["cutoffs"], curve["recall"], curve["fah"], strict=True):
            if not 0.0 < cutoff < 1.0 or cutoff_to_uint8(cutoff) < silence_u8 or fah > budget + 1e-9:
                continue
            if (recall, -fah, cutoff) > (best["recall"], -best["fah"], best["cutoff"]):
                best = {"recall": recall, "fah": fah, "cutoff": cutoff, "window": int(window)}
    return best


def arena_bytes(tflite: Path) -> int:
    """The tensor arena the model needs in TFLite Micro (measured, without the manifest's margin)."""
    from mww.device.tflm_arena import measure_tensor_arena

    return int(measure_tensor_arena(tflite.read_bytes()))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else ("n/a" if a == 0 else "inf")


def format_table(r: dict) -> str:
    """The one table of the run (and the project's shipped settings under it)."""
    p, ref = r["project"], r["reference"]
    rows = [("", f"project ({r['preset']})", "reference", "project/reference")]
    for budget in BUDGETS_FAH:
        a, b = p["budgets"][f"{budget:g}"]["recall"], ref["budgets"][f"{budget:g}"]["recall"]
        rows.append((f"recall @ {budget:g} FA/h", _pct(a), _pct(b), _ratio(a, b)))
    silence = (p["silence_u8"], ref["silence_u8"])
    rows.append(("output on digital silence", f"{silence[0]}/255", f"{silence[1]}/255", ""))
    rows.append(("model size (bytes)", f"{p['size']:,}", f"{ref['size']:,}", _ratio(p["size"], ref["size"])))
    rows.append(
        ("tensor arena (bytes)", f"{p['arena']:,}", f"{ref['arena']:,}", _ratio(p["arena"], ref["arena"]))
    )
    cached = " (cached)" if ref["features_cached"] else ""
    pt, rt = p["times"], ref["times"]
    for label, key in (
        ("features", "features"),
        ("training + export", "training_export"),
        ("total", "total"),
    ):
        rows.append(
            (
                f"wall time: {label} (s)",
                f"{pt[key]:.0f}",
                f"{rt[key]:.0f}{cached if key != 'training_export' else ''}",
                _ratio(pt[key], rt[key]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"dataset {r['dataset']}; held-out test {r['test']} ({r['test_positives']} positives, "
        f"{r['test_ambient_hours']:.2f} h ambient)",
        f"steps: project {' + '.join(map(str, r['phases']))}, reference {r['steps']}; batch {r['batch']}",
        *(
            [f"project's config changed by --project-override: {r['project_override']}"]
            if r.get("project_override")
            else []
        ),
        *(
            [f"reference: model and evaluation reused from {r['reference_reused_from']}"]
            if r.get("reference_reused_from")
            else []
        ),
        "recall: the best over every cutoff and window of ESPHome's detector with FA/h at most the budget,",
        "  at cutoffs that the model's output on digital silence does not exceed",
        "",
    ]
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(widths[j]) if j == 0 else cell.rjust(widths[j]) for j, cell in enumerate(row)
            )
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    at, other = p["at_settings"], p["other_rule"]
    lines += [
        "",
        f"project's shipped settings: cutoff {at['probability_cutoff']:g}, "
        f"window {at['sliding_window_size']} ({at['settings_from']})",
        f"  {at['rule']}: {at['fah']:.2f} FA/h ({at['false_activations']} false activations), "
        f"recall {_pct(at['recall'])}",
        f"  {other['rule']}: {other['fah']:.2f} FA/h ({other['false_activations']} false activations), "
        f"recall {_pct(other['recall'])}",
    ]
    lines += [
        "wall time, project: features = mww-prepare; training + export = mww-train (which makes its",
        "  augmented copies of the clips first) and mww-export. reference: features = gen_features.py",
        "  (augmentation included); training + export = train.sh (its own test of the model included)",
    ]
    if cached:
        lines.append(
            "(cached): the reference's features were reused; their time is the one measured when made"
        )
    env = r["reference_env_seconds"]
    lines.append(
        f"reference environment: {'built now' if r['reference_env_built_now'] else 'reused, built'} "
        f"in {env:.0f} s"
    )
    return "\n".join(lines)


def side(evaluation: dict, tflite: Path, manifest: Path, times: dict[str, float]) -> dict[str, Any]:
    silence = silence_output(tflite, manifest)
    return {
        "silence_u8": silence,
        "tflite": str(tflite),
        "size": tflite.stat().st_size,
        "arena": arena_bytes(tflite),
        "times": times,
        "budgets": {f"{b:g}": best_recall(evaluation["sweep"], b, silence) for b in BUDGETS_FAH},
        "at_settings": evaluation["at_settings"],
        "other_rule": evaluation["other_rule"],
    }


# --------------------------------------------------------------------------- the whole comparison


def compare(args: argparse.Namespace) -> int:
    dataset, test = Path(args.dataset).resolve(), Path(args.test).resolve()
    ref_dir, work = Path(args.reference_dir).resolve(), Path(args.work).resolve()
    counts, test_counts = check_dataset(dataset), check_test(test)
    check_reference_dir(ref_dir)
    phases = scaled_phases(args.preset, args.steps)
    if shutil.which(args.python) is None:
        raise BenchError(
            f"The Python {args.python!r} for the reference's environment was not found; pass --python."
        )
    for name in ("mww-prepare", "mww-train", "mww-export", "mww-evaluate"):
        mww_bin(name)
    extra = project_override(args.project_override)
    if args.reuse_reference:
        earlier = reused_reference(
            Path(args.reuse_reference).resolve(), dataset, test, args.steps, args.batch
        )
    run = work / "runs" / time.strftime("%Y%m%d-%H%M%S")
    try:
        run.mkdir(parents=True)
    except OSError as exc:
        raise BenchError(
            f"The run folder {run} could not be made ({exc.strerror or exc}); pass another --work."
        ) from None
    say(f"run folder {run}; dataset {counts}; test {test_counts}")

    if args.reuse_reference:
        reference_eval, reference_side = earlier["evaluations"]["reference"], earlier["reference"]
        env_seconds, built_now = earlier["reference_env_seconds"], None
    tflite, override, times = project_pipeline(run, dataset, args.preset, phases, args.batch, extra)
    if not args.reuse_reference:
        venv, built_now, env_seconds = reference_env(work, ref_dir, args.python)
        features, feat_seconds, cached = reference_features(work, dataset, ref_dir, venv)
        ref_tflite, ref_seconds = reference_train(run, ref_dir, venv, features, args.steps, args.batch)
        ref_manifest, ref_override = reference_manifest(ref_tflite, run / "reference")
        ref_model = run / "reference" / "reference.tflite"
        reference_eval = evaluate(
            "reference",
            ref_model,
            ref_manifest,
            ["--config", "standard", "--override", ref_override],
            test,
            run,
        )
        r_times = {"features": feat_seconds, "training_export": ref_seconds}
        r_times["total"] = r_times["features"] + r_times["training_export"]
        reference_side = {**side(reference_eval, ref_model, ref_manifest, r_times), "features_cached": cached}

    project_eval = evaluate(
        "project",
        tflite,
        tflite.with_suffix(".json"),
        ["--config", args.preset, "--override", override],
        test,
        run,
    )
    p_times = {"features": times["features"], "training_export": times["training"] + times["export"]}
    p_times["total"] = p_times["features"] + p_times["training_export"]
    result = {
        "dataset": str(dataset),
        "test": str(test),
        "test_positives": project_eval["counts"]["positives"],
        "test_ambient_hours": project_eval["counts"]["ambient_hours"],
        "preset": args.preset,
        "phases": phases,
        "steps": args.steps,
        "batch": args.batch,
        "reference_env_seconds": env_seconds,
        "reference_env_built_now": built_now is not None,
        "project_override": extra,
        "reference_reused_from": args.reuse_reference and str(Path(args.reuse_reference).resolve()),
        "project": side(project_eval, tflite, tflite.with_suffix(".json"), p_times),
        "reference": reference_side,
    }
    table = format_table(result)
    (run / "table.txt").write_text(table + "\n")
    write_json(
        run / "results.json",
        {**result, "evaluations": {"project": project_eval, "reference": reference_eval}},
    )
    print(table)
    say(f"table and raw JSON: {run / 'table.txt'}, {run / 'results.json'}")
    return 0


def project_override(path: str | None) -> dict[str, dict[str, Any]]:
    """The config sections of --project-override (a YAML file of sections and keys), checked."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BenchError(f"--project-override {path} could not be read as YAML ({exc}).") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BenchError(
            f"--project-override {path} must map config sections to their keys, for example "
            "'training: {time_mask_count: [2, 2]}'."
        )
    return data


def reused_reference(run: Path, dataset: Path, test: Path, steps: int, batch: int) -> dict[str, Any]:
    """results.json of an earlier run whose reference side is reused: same dataset, test, steps, batch."""
    results = read_json(run / "results.json")
    asked = {"dataset": str(dataset), "test": str(test), "steps": steps, "batch": batch}
    differs = {k: results.get(k) for k, v in asked.items() if results.get(k) != v}
    if differs:
        raise BenchError(
            f"--reuse-reference {run}: that run was made with {differs}, not {asked}; reuse a run of the "
            "same dataset, test folder, steps and batch."
        )
    return results


def make_test(source: Path, test: Path, dataset: Path | None) -> int:
    """Copy the held-out voices' positives and the ambient recordings of a generated dataset into TEST."""
    manifest = read_json(source / "generation.json")
    if not isinstance(manifest, dict) or not manifest.get("held_out_speakers"):
        raise BenchError(
            f"{source} has no generation.json written by mww-generate (with held-out voices), so the voices "
            "kept out of its training are unknown. Generate one (mww-generate --output DIR --seed 2) or "
            f"build the test folder by hand: {test}/positives/<speaker>/*.wav and {test}/ambient/*.wav."
        )
    if test.exists() and any(test.iterdir()):
        raise BenchError(f"The test folder {test} exists and is not empty; pass a new folder with --test.")
    held = list(manifest["held_out_speakers"])
    if dataset is not None and (dataset / "positive").is_dir():  # voices DATA trains on are not held out
        trained_voices = {p.name for p in (dataset / "positive").iterdir() if p.is_dir()}
        held = [s for s in held if s not in trained_voices]
        if not held:
            raise BenchError(
                f"Every voice {source} holds out also speaks in {dataset / 'positive'}; generate the test "
                "dataset with another --seed or --size."
            )
    missing = [s for s in held if not (source / "positive" / s).is_dir()]
    if missing or not (source / "ambient").is_dir():
        raise BenchError(
            f"{source} lacks {'ambient/' if not missing else 'positive/' + missing[0] + '/'}, which its "
            "generation.json lists; generate the dataset again (mww-generate --force)."
        )
    for speaker in held:
        shutil.copytree(source / "positive" / speaker, test / "positives" / speaker)
    shutil.copytree(source / "ambient", test / "ambient")
    write_json(
        test / "source.json", {"from": str(source.resolve()), "seed": manifest.get("seed"), "voices": held}
    )
    n = len(wav_files(test / "positives"))
    print(
        f"{test}: {n} positives of {len(held)} held-out voices and {len(wav_files(test / 'ambient'))} "
        f"ambient recordings from {source} (seed {manifest.get('seed')})"
    )
    if dataset is not None and (dataset / "positive").is_dir():
        trained = {p.name for p in (dataset / "positive").iterdir() if p.is_dir()}
        same = [s for s in held if s in trained]
        timbres = {s.partition("_")[2] for s in trained}
        heard = [s for s in held if s.partition("_")[2] in timbres]
        print(
            f"note: {len(same)} of these {len(held)} voices, and the timbre (espeak variant) of "
            f"{len(heard)}, "
            f"also speak in {dataset / 'positive'}; the clips themselves differ"
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    positive = checked(int, "a whole number", lambda v: v >= 1, "{text} is below 1")
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="dataset folder in this project's layout (both trainers use it)")
    parser.add_argument("--test", help="held-out audio: TEST/positives/**.wav and TEST/ambient/**.wav")
    parser.add_argument("--steps", type=positive, default=10000, help="training steps of each side (10000)")
    parser.add_argument("--batch", type=positive, default=128, help="batch size of each side (128)")
    parser.add_argument("--preset", default="standard", help="this project's preset (standard)")
    parser.add_argument("--work", default="./benchmark_runs", help="cache and runs folder (./benchmark_runs)")
    parser.add_argument(
        "--reference-dir",
        default=str(ROOT.parent / "shared" / "reference"),
        help="folder with RECIPE.md, the reference tarball and its scripts (../shared/reference)",
    )
    parser.add_argument("--python", default="python3", help="Python 3.11 for the reference's environment")
    parser.add_argument(
        "--project-override",
        metavar="YAML",
        help="config sections and keys that replace the preset's on this project's side (a change to "
        "measure)",
    )
    parser.add_argument(
        "--reuse-reference",
        metavar="RUN",
        help="take the reference's model and evaluation from an earlier run folder (same dataset, test, "
        "steps and batch) instead of training it again",
    )
    parser.add_argument(
        "--make-test",
        metavar="FROM_DATASET",
        help="make --test from a dataset of mww-generate: its held-out voices' positives and its ambient "
        "audio",
    )
    return parser


def action(args: argparse.Namespace) -> int:
    if args.make_test is not None:
        if args.test is None:
            raise BenchError("--make-test FROM_DATASET needs --test DIR, the folder to make.")
        dataset = Path(args.dataset).resolve() if args.dataset else None
        return make_test(Path(args.make_test).resolve(), Path(args.test).resolve(), dataset)
    if args.dataset is None or args.test is None:
        raise BenchError("Pass --dataset DIR and --test DIR (or --make-test FROM_DATASET --test DIR).")
    return compare(args)


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, _parser(), action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
