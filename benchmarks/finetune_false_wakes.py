"""Fine-tuning on a handful of false wakes: does the model stop firing on them, and keep its recall?

Usage: python benchmarks/finetune_false_wakes.py [--work ./benchmark_runs/fine_tune] [--seed 0]
           [--home-hours 4] [--fine-tune-steps 1000] [--fine-tune-learning-rate 0.0001]
           [--cutoff C --window W]

1. a generated dataset (`mww-generate`'s Python API, smaller than `small`) and a fast_test model on it;
2. "the home": hours of ambient audio from another generator seed, which training never saw; the
   exported model is streamed over it (`mww-evaluate --tflite` folder mode, the device's detector) at
   its shipped cutoff and window, or at --cutoff/--window, and every detection there is a false wake;
3. the audio of each false wake (the model input window that fired: 2.5 s before the detection and
   0.1 s after it) joins the training hard negatives, in the folder of a training speaker so that it
   stays in the training split;
4. `mww-train --init-from <the model> --fine-tune-steps N` on that data, and, as a control, the same
   fine-tuning on the dataset without the false wakes; both exported;
5. the three models at the same cutoff and window: detections on the home audio (and how many of the
   first model's false wakes still fire), recall on the held-out voices' positives, and detections on
   another unseen hour of ambient audio; the fine-tuned model at its own shipped settings too.

Everything is kept under --work and reused when there (delete the folder to start over). Prints one
table and writes results_c<cutoff>_w<window>_s<steps>_lr<rate>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import soundfile as sf
import yaml

from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth.dataset import generate_dataset
from mww.synth.request import GenerationCounts

TRAIN_COUNTS = GenerationCounts(2000, 2000, 500, 20, 20, 3600.0, 200)
BEFORE_S, AFTER_S = 2.5, 0.1  # the model's input window (2.33 s) ending where it fired, and a little more
MATCH_S = 1.0  # a detection within this of an original false wake is that false wake firing again


def run(argv: list[str], log: Path) -> str:
    """Run one mww command in this interpreter; its output goes to `log`, stdout is returned."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(argv)}\n{result.stdout}\n{result.stderr}")
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}); see {log}")
    print(f"  {argv[0]} {argv[1] if len(argv) > 1 else ''}... {time.perf_counter() - started:.0f} s")
    return result.stdout


def generate(folder: Path, seed: int, counts: GenerationCounts) -> dict[str, Any]:
    generate_dataset(folder, "hey computer", seed=seed, progress=False, counts=counts, reuse=True)
    return json.loads((folder / "generation.json").read_text())


def ambient_only(hours: float) -> GenerationCounts:
    return GenerationCounts(2, 0, 0, 0, 0, hours * 3600.0, 2)


def write_override(path: Path, base: Path, **paths: Path) -> Path:
    data = yaml.safe_load(base.read_text())
    data["paths"].update({key: str(value) for key, value in paths.items()})
    data.setdefault("performance", {})["tensorboard_log_dir"] = str(path.parent / "logs")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train_and_export(name: str, work: Path, override: Path, extra: list[str]) -> tuple[Path, Path]:
    """Train (unless its export is there) and export; the .tflite and its manifest."""
    tflite = work / name / "export" / f"{name}.tflite"
    if not tflite.is_file():
        ckpt = work / name / "checkpoints" / "best_weights.weights.h5"
        cfg = ["--config", "fast_test", "--override", str(override)]
        run(["mww.cli.train", *cfg, "--quiet", *extra], work / name / "train.log")
        run(
            [
                "mww.cli.export",
                "--checkpoint",
                str(ckpt),
                *cfg,
                "--output",
                str(tflite.parent),
                "--model-name",
                name,
            ],
            work / name / "export.log",
        )
    return tflite, tflite.with_suffix(".json")


def with_settings(manifest: Path, cutoff: float, window: int, target: Path) -> Path:
    """A copy of `manifest` with another cutoff and window."""
    data = json.loads(manifest.read_text())
    data["micro"]["probability_cutoff"] = cutoff
    data["micro"]["sliding_window_size"] = window
    target.write_text(json.dumps(data, indent=2))
    return target


def evaluate(tflite: Path, manifest: Path, override: Path, positives: Path, ambient: Path, log: Path) -> dict:
    argv = ["mww.cli.evaluate", "--tflite", str(tflite), "--manifest", str(manifest), "--config", "fast_test"]
    argv += ["--override", str(override), "--positives", str(positives), "--ambient", str(ambient), "--json"]
    result = json.loads(run(argv, log))
    at = result["at_settings"]
    ambient_events = [e for e in result["events"] if e["source"] == "ambient"]
    return {
        "recall": at["recall"],
        "false_activations": at["false_activations"],
        "fah": at["fah"],
        "hours": result["counts"]["fah_hours"],
        "events": [(e["file"], e["time_s"]) for e in ambient_events],
    }


def cut_false_wakes(events: list[tuple[str, float]], folder: Path) -> list[Path]:
    """The audio of every detection, BEFORE_S before it to AFTER_S after it, as WAVs in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (file, time_s) in enumerate(sorted(events)):
        audio, rate = sf.read(file, dtype="int16")
        assert rate == SAMPLE_RATE_HZ
        first = max(0, round((time_s - BEFORE_S) * rate))
        end = min(audio.size, round((time_s + AFTER_S) * rate))
        path = folder / f"false_wake_{i:03d}_{Path(file).stem}_at_{time_s:07.2f}s.wav"
        sf.write(str(path), audio[first:end], rate, subtype="PCM_16")
        written.append(path)
    return written


def still_firing(original: list[tuple[str, float]], now: list[tuple[str, float]]) -> int:
    return sum(any(f == g and abs(t - u) <= MATCH_S for g, u in now) for f, t in original)


def held_out_positives(dataset: Path, speakers: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for speaker in speakers:
        link = folder / speaker
        if not link.exists():
            link.symlink_to(dataset / "positive" / speaker, target_is_directory=True)
    return folder


def training_speaker(work: Path, held: list[str]) -> str:
    """A speaker the first run's split put in training (from its splits.json)."""
    splits = json.loads((work / "processed" / "splits.json").read_text())
    files = splits.get("files", splits)
    speakers = sorted(
        {v["speaker"] for v in files.values() if v.get("kind") == "positive" and v.get("split") == "train"}
    )
    return next(s for s in speakers if s not in held)


def measure(name: str, tflite: Path, manifest: Path, override: Path, dirs: dict[str, Path]) -> dict:
    """Recall on the held-out positives and detections on the home and the other ambient audio."""
    log = manifest.parent
    home = evaluate(tflite, manifest, override, dirs["positives"], dirs["home"], log / f"{name}_home.log")
    other = evaluate(tflite, manifest, override, dirs["positives"], dirs["other"], log / f"{name}_other.log")
    return {**home, "other_false_activations": other["false_activations"], "other_hours": other["hours"]}


def fine_tune(
    name: str, work: Path, args: argparse.Namespace, hard_negative_dir: Path
) -> tuple[Path, Path, Path]:
    """--init-from the first model, one phase, on the dataset with `hard_negative_dir`."""
    override = write_override(
        work / f"{name}_override.yaml",
        work / "dataset" / "demo_override.yaml",
        processed_dir=work / "processed",
        hard_negative_dir=hard_negative_dir,
        checkpoint_dir=work / name / "checkpoints",
    )
    start = work / "base" / "checkpoints" / "best_weights.weights.h5"
    extra = ["--init-from", str(start), "--fine-tune-steps", str(args.fine_tune_steps)]
    extra += ["--fine-tune-learning-rate", str(args.fine_tune_learning_rate)]
    tflite, manifest = train_and_export(name, work, override, extra)
    return tflite, manifest, override


def row(label: str, values: list[Any], fmt: str) -> str:
    return f"{label:28}" + "".join(f"{format(v, fmt):>12}" for v in values)


def report(results: dict[str, Any]) -> None:
    models = results["models"]
    names = list(models)
    s = results["settings"]
    print(f"\nat cutoff {s['probability_cutoff']}, window {s['sliding_window_size']} ({s['from']}):")
    print(f"{'':28}" + "".join(f"{n:>12}" for n in names))
    print(row("held-out recall", [models[n]["recall"] for n in names], ".1%"))
    print(row("home false wakes", [models[n]["false_activations"] for n in names], "d"))
    print(row("  of the first model's", [models[n]["original_still_firing"] for n in names], "d"))
    print(row("other audio, false wakes", [models[n]["other_false_activations"] for n in names], "d"))
    own = results["fine_tuned_own_settings"]
    print(
        f"fine-tuned at its own cutoff {own['probability_cutoff']}, window {own['sliding_window_size']}: "
        f"recall {own['recall']:.1%}, {own['false_activations']} home false wakes "
        f"({own['original_still_firing']} of the first model's)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("benchmark_runs/fine_tune"))
    parser.add_argument("--seed", type=int, default=0, help="generator seed of the training dataset")
    parser.add_argument("--home-hours", type=float, default=4.0)
    parser.add_argument("--other-hours", type=float, default=1.0)
    parser.add_argument("--fine-tune-steps", type=int, default=1000)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=0.0001)
    parser.add_argument("--cutoff", type=float, default=None, help="default: the first model's shipped one")
    parser.add_argument("--window", type=int, default=None, help="default: the first model's shipped one")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    print("datasets")
    made = generate(work / "dataset", args.seed, TRAIN_COUNTS)
    home = generate(work / "home", args.seed + 1000, ambient_only(args.home_hours))
    generate(work / "other", args.seed + 2000, ambient_only(args.other_hours))
    held = made["held_out_speakers"]
    dirs = {
        "positives": held_out_positives(work / "dataset", held, work / "held_out_positives"),
        "home": work / "home" / "ambient",
        "other": work / "other" / "ambient",
    }
    hours = home["ambient_seconds"] / 3600
    print(f"  {len(made['speakers'])} speakers ({len(held)} held out); home {hours:.1f} h")

    print("first model (fast_test)")
    base_override = write_override(
        work / "base_override.yaml",
        work / "dataset" / "demo_override.yaml",
        processed_dir=work / "processed",
        checkpoint_dir=work / "base" / "checkpoints",
    )
    base_tflite, base_manifest = train_and_export("base", work, base_override, [])
    shipped = json.loads(base_manifest.read_text())["micro"]
    cutoff = shipped["probability_cutoff"] if args.cutoff is None else args.cutoff
    window = shipped["sliding_window_size"] if args.window is None else args.window
    tag = f"c{cutoff:g}_w{window}"
    run = f"s{args.fine_tune_steps}_lr{args.fine_tune_learning_rate:g}"
    settings = {
        "probability_cutoff": cutoff,
        "sliding_window_size": window,
        "from": "the first model's shipped settings"
        if (args.cutoff, args.window) == (None, None)
        else "fixed",
    }
    base_fixed = with_settings(base_manifest, cutoff, window, work / "base" / f"{tag}.json")
    first = measure(f"first_{tag}", base_tflite, base_fixed, base_override, dirs)
    found = f"{first['false_activations']} false wakes in {first['hours']:.2f} h"
    print(f"  {found} at cutoff {cutoff}, window {window}")
    if not first["events"]:
        raise SystemExit("the first model has no false wake in the home audio: give more --home-hours")

    print("fine-tuning on them, and without them (control)")
    hard = work / f"hard_negative_{tag}"
    if not hard.is_dir():
        shutil.copytree(work / "dataset" / "hard_negative", hard)
    clips = cut_false_wakes(first["events"], hard / training_speaker(work, held))
    models = {"first": first}
    for name, hard_dir in (("fine-tuned", hard), ("control", work / "dataset" / "hard_negative")):
        folder = f"{name.replace('-', '_')}_{tag}_{run}"
        tflite, manifest, override = fine_tune(folder, work, args, hard_dir)
        fixed = with_settings(manifest, cutoff, window, work / folder / f"{tag}.json")
        models[name] = measure(name, tflite, fixed, override, dirs)
    own_manifest = work / f"fine_tuned_{tag}_{run}" / "export" / f"fine_tuned_{tag}_{run}.json"
    own = json.loads(own_manifest.read_text())["micro"]
    ft_override = work / f"fine_tuned_{tag}_{run}_override.yaml"
    own_result = measure("own", own_manifest.with_suffix(".tflite"), own_manifest, ft_override, dirs)
    for result in (*models.values(), own_result):
        result["original_still_firing"] = still_firing(first["events"], result["events"])

    results = {
        "seed": args.seed,
        "dataset": {**{k: made[k] for k in ("counts", "ambient_seconds")}, "held_out_speakers": len(held)},
        "home_hours": first["hours"],
        "other_hours": first["other_hours"],
        "settings": settings,
        "false_wake_clips": len(clips),
        "fine_tune": {"steps": args.fine_tune_steps, "learning_rate": args.fine_tune_learning_rate},
        "models": {name: {k: v for k, v in r.items() if k != "events"} for name, r in models.items()},
        "fine_tuned_own_settings": {
            **{k: v for k, v in own_result.items() if k != "events"},
            "probability_cutoff": own["probability_cutoff"],
            "sliding_window_size": own["sliding_window_size"],
        },
        "wall_s": round(time.perf_counter() - began),
    }
    (work / f"results_{tag}_{run}.json").write_text(json.dumps(results, indent=2))
    report(results)
    print(f"results: {work / f'results_{tag}_{run}.json'} ({results['wall_s']} s)")


if __name__ == "__main__":
    main()
