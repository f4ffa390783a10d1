"""mww-detect: hear a wake-word model for yourself before flashing it.

Runs an exported model (its manifest .json, or a bare .tflite with --tflite) on WAV files, or on a
microphone with --mic, exactly as the ESP32 runs it: the device's front end and int8 input rule,
TFLite Micro stepped every 30 ms, and ESPHome's detector (sliding-window mean against the cutoff,
start-up suppression and refractory period). Each file is one device start. Every detection is
printed with its time (seconds into the file, or since listening started) and the window mean that
fired, as the device computes it.

Audio must be 16 kHz mono 16-bit PCM, what the device hears; --convert resamples and mixes down
other files. A folder stands for every audio file under it (linked folders followed, each real file
once). Each file is read block by block, so a recording of hours takes little memory. --mic needs
the optional sounddevice package (pip install sounddevice).

Exit status: 0 when the model ran (with or without detections), 2 for bad input (the reason is
printed as one paragraph), 130 when interrupted while reading files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mww.cli import Parser, UsageError, checked, run_command
from mww.device import constants as C
from mww.device.pymicro import rules_disagree

if TYPE_CHECKING:
    from mww.device.runtime import WakeWordModel
    from mww.evaluate.listen import Detection, FileDetections, MicrophoneSession

PROG = "mww-detect"


_cutoff = checked(float, "a number", lambda v: 0.0 <= v <= 1.0, "{text} is not between 0 and 1 (e.g. 0.97)")
_window = checked(int, "a whole number", lambda v: v >= 1, "{text} is below 1")
_seconds = checked(
    float, "a number of seconds", lambda v: v > 0, "{text} is not a positive number of seconds"
)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="FILE",
        help="the model's manifest (MODEL.json, written by mww-export), then the audio files or folders "
        "of them; with --tflite, only audio files or folders",
    )
    parser.add_argument(
        "--tflite",
        metavar="PATH",
        help="run this .tflite without a manifest; --cutoff and --window then default to mww-export's "
        "defaults (0.97 and 5)",
    )
    parser.add_argument(
        "--cutoff", type=_cutoff, metavar="P", help="probability_cutoff to use instead of the manifest's"
    )
    parser.add_argument(
        "--window", type=_window, metavar="N", help="sliding_window_size to use instead of the manifest's"
    )
    parser.add_argument("--mic", action="store_true", help="listen on a microphone (needs sounddevice)")
    parser.add_argument(
        "--device", metavar="ID", help="with --mic: input device index or name (default: the system's)"
    )
    parser.add_argument(
        "--duration", type=_seconds, metavar="S", help="with --mic: stop after S seconds (default: Ctrl+C)"
    )
    parser.add_argument(
        "--convert",
        action="store_true",
        help="resample and mix down audio that is not 16 kHz mono 16-bit (with mww.device.audio) instead of "
        "refusing it",
    )
    parser.add_argument(
        "--armed",
        action="store_true",
        help="start each file as a device that has been listening for a while: no start-up suppression "
        "(the device does not detect in its first second; use this for short clips that start with the "
        "wake word)",
    )
    parser.add_argument(
        "--save-detections",
        metavar="DIR",
        help="write the audio around each detection (2 s before, 1 s after) into DIR as a WAV named after "
        "its source and time; the ones that were false wakes go into the dataset's false_wakes/ folder",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return parser


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _split_inputs(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """(model path, audio paths) from the positional arguments and --tflite."""
    inputs = list(args.inputs)
    if args.tflite is not None:
        manifests = [p for p in inputs if p.lower().endswith(".json")]
        if manifests:
            raise UsageError(
                f"--tflite runs a model without a manifest, but {manifests[0]} looks like a manifest. Pass "
                "either the manifest (MODEL.json) or --tflite with --cutoff and --window"
            )
        return Path(args.tflite), inputs
    if not inputs:
        raise UsageError("give the model's manifest (MODEL.json, written by mww-export) or --tflite PATH")
    model, audio = inputs[0], inputs[1:]
    if not model.lower().endswith((".json", ".tflite")):
        raise UsageError(
            f"the first argument must be the model's manifest (a .json written by mww-export), got {model}; "
            "or pass the model with --tflite PATH"
        )
    return Path(model), audio


def _load(args: argparse.Namespace, model_path: Path) -> WakeWordModel:
    from mww.config.schema import ExportConfig
    from mww.device.runtime import load_wake_word_model

    cutoff, window = args.cutoff, args.window
    if model_path.suffix.lower() != ".json":
        defaults = ExportConfig()
        if cutoff is None or window is None:
            cutoff = defaults.probability_cutoff if cutoff is None else cutoff
            window = defaults.sliding_window_size if window is None else window
            _note(
                f"no manifest: using probability_cutoff {cutoff} and sliding_window_size {window} "
                "(mww-export's defaults unless given); pass --cutoff and --window, or the manifest, to "
                "run the settings the device will use"
            )
    return load_wake_word_model(model_path, probability_cutoff=cutoff, sliding_window_size=window)


def _model_dict(model: WakeWordModel) -> dict[str, object]:
    from mww.device.detection import cutoff_to_uint8

    return {
        "wake_word": model.wake_word,
        "tflite": str(model.tflite_path),
        "manifest": None if model.manifest_path is None else str(model.manifest_path),
        "probability_cutoff": model.probability_cutoff,
        "cutoff_u8": cutoff_to_uint8(model.probability_cutoff),
        "sliding_window_size": model.sliding_window_size,
        "stride": model.stride,
        "tensor_arena_size": model.tensor_arena_size,
        "refractory_slices": C.DETECTION_REFRACTORY_SLICES,
    }


def _model_lines(model: WakeWordModel, armed: bool) -> list[str]:
    from mww.device.detection import cutoff_to_uint8

    c, w = cutoff_to_uint8(model.probability_cutoff), model.sliding_window_size
    source = f"manifest {model.manifest_path}" if model.manifest_path else "no manifest"
    step_ms = model.stride * C.WINDOW_STEP_MS
    start = "armed at start" if armed else "disarmed for the first ~1 s of each start"
    return [
        f'Model     {model.tflite_path} ("{model.wake_word}", {source})',
        f"Detector  probability_cutoff {model.probability_cutoff} (the device truncates it to {c}/255 = "
        f"{c / 255:.3f}: fires when the last {w} outputs sum to more than {c} x {w} = {c * w}), "
        f"sliding_window_size {w}, one invocation per {step_ms} ms; "
        f"refractory period {C.DETECTION_REFRACTORY_SLICES} slices of 10 ms below the cutoff, {start}",
        *([f"Warning   {reason}"] if (reason := rules_disagree(model.probability_cutoff, w)) else []),
    ]


def _detection_line(detection: Detection, label: str = "") -> str:
    return f"  {detection.time_s:9.3f} s  {label}probability {detection.probability:.3f}"


def _event_starts(times: Sequence[float], apart_s: float = 1.0) -> list[float]:
    """Start times of events: a detection within `apart_s` of the previous kept one is the same event
    (the device's refractory second and the other runtime's rising edges then count alike)."""
    kept: list[float] = []
    for t in times:
        if not kept or t - kept[-1] > apart_s:
            kept.append(t)
    return kept


def _runtimes_disagree(result: FileDetections, tolerance_s: float = 0.1) -> bool:
    """Whether Home Assistant's detector gives other events than the ESP32's on this file."""
    ours = _event_starts([d.time_s for d in result.detections])
    theirs = _event_starts(result.home_assistant)
    return len(ours) != len(theirs) or any(
        abs(a - b) > tolerance_s for a, b in zip(ours, theirs, strict=True)
    )


def _file_lines(result: FileDetections) -> list[str]:
    n = len(result.detections)
    if n:
        head = f"{result.path}  {result.duration_s:.2f} s: {n} detection{'s' if n != 1 else ''}"
    elif result.peak_probability is None:
        head = f"{result.path}  {result.duration_s:.2f} s: no detection (too short for a full window)"
    else:
        head = (
            f"{result.path}  {result.duration_s:.2f} s: no detection (highest window mean "
            f"{result.peak_probability:.3f} at {result.peak_time_s:.3f} s)"
        )
    lines = [head, *(_detection_line(d) for d in result.detections)]
    if _runtimes_disagree(result):
        times = ", ".join(f"{t:.3f} s" for t in result.home_assistant)
        lines.append(
            "  note: Home Assistant (pymicro-wakeword: float mean of q/256, no start-up suppression) would "
            f"detect {f'at {times}' if times else 'nothing'}: the two runtimes disagree on this file"
        )
    if result.suppressed_at_start:
        times = ", ".join(f"{t:.3f} s" for t in result.suppressed_at_start)
        lines.append(
            f"  note: the window mean passed the cutoff at {times}, inside the start-up suppression (the "
            "device does not detect in its first second of listening); start the file with a second of "
            "silence, or pass --armed"
        )
    return lines


def audio_files(inputs: Sequence[str]) -> list[Path]:
    """The audio files the arguments name: a file as given, a folder as every audio file under it
    (`mww.data.ingest.discover`: linked folders followed, a link that points nowhere listed so that
    reading it names it); each real file once, in the order given."""
    from mww.data.ingest import discover

    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for name in inputs:
        path = Path(name)
        found = discover(path) if path.is_dir() else [path]
        if path.is_dir() and not found:
            raise UsageError(
                f"no audio files (.wav, .flac, .ogg, .mp3) were found under the folder {path}; subfolders "
                "are searched too"
            )
        for file in found:
            try:
                stat = file.stat()
            except OSError:  # missing or a broken link: reading it reports it by name
                files.append(file)
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                files.append(file)
    return files


def _run_files(args: argparse.Namespace, model: WakeWordModel, audio: list[str]) -> int:
    from mww.evaluate.listen import detect_files

    results = detect_files(model, audio_files(audio), convert=args.convert, armed=args.armed)
    total = sum(len(r.detections) for r in results)
    seconds = sum(r.duration_s for r in results)
    saved = _save_file_detections(args, results)
    if args.json:
        payload = {
            "model": _model_dict(model),
            "armed": args.armed,
            "files": [r.to_dict() for r in results],
            "total_detections": total,
            "total_duration_s": round(seconds, 3),
            **({"saved_detections": [str(p) for p in saved]} if args.save_detections else {}),
        }
        print(json.dumps(payload, indent=2))
        return 0
    lines = [*_model_lines(model, args.armed), ""]
    for result in results:
        lines += _file_lines(result)
    lines.append(
        f"Total: {total} detection{'s' if total != 1 else ''} in {len(results)} "
        f"file{'s' if len(results) != 1 else ''} ({seconds:.2f} s of audio)"
    )
    lines += _saved_lines(args, saved)
    print("\n".join(lines))
    return 0


def _save_file_detections(args: argparse.Namespace, results: Sequence[FileDetections]) -> list[Path]:
    """With --save-detections: the audio around every detection of every file, written into DIR."""
    from mww.evaluate.false_wakes import save_file_detections

    if not args.save_detections:
        return []
    saved = []
    for result in results:
        if result.detections:
            samples = round(result.duration_s * C.SAMPLE_RATE_HZ)
            times = [d.time_s for d in result.detections]
            saved += save_file_detections(
                Path(args.save_detections), result.path, times, samples, convert=args.convert
            )
    return saved


def _saved_lines(args: argparse.Namespace, saved: Sequence[Path]) -> list[str]:
    if not args.save_detections:
        return []
    return [
        f"Saved {len(saved)} detection clip{'s' if len(saved) != 1 else ''} in {args.save_detections}; move "
        "the false wakes among them into the dataset's false_wakes/ folder to train against them",
        *(f"  {p}" for p in saved),
    ]


def _run_mic(args: argparse.Namespace, model: WakeWordModel) -> int:
    from mww.evaluate.false_wakes import LiveClipSaver
    from mww.evaluate.listen import listen

    def started(name: str) -> None:
        if not args.json:
            print("\n".join(_model_lines(model, args.armed)), flush=True)
        until = f"for {args.duration:g} s" if args.duration else "until Ctrl+C"
        _note(f'listening on {name!r} for "{model.wake_word}" {until}')

    saver = LiveClipSaver(Path(args.save_detections)) if args.save_detections else None

    def heard(detection: Detection) -> None:
        if not args.json:
            print(_detection_line(detection, f"{model.wake_word}  "), flush=True)
        if saver is not None:
            saver.detected(detection.time_s)

    try:
        session: MicrophoneSession = listen(
            model,
            device=args.device,
            duration_s=args.duration,
            armed=args.armed,
            on_detection=heard,
            on_start=started,
            on_audio=saver.feed if saver is not None else None,
        )
    finally:
        if saver is not None:
            saver.close()  # the detections of the last second, with what was heard
    saved = saver.saved if saver is not None else []
    if args.json:
        extra = {"saved_detections": [str(p) for p in saved]} if saver is not None else {}
        print(
            json.dumps(
                {"model": _model_dict(model), "armed": args.armed, **session.to_dict(), **extra}, indent=2
            )
        )
        return 0
    n = len(session.detections)
    print(f"Heard {session.duration_s:.1f} s on {session.device!r}: {n} detection{'s' if n != 1 else ''}")
    for line in _saved_lines(args, saved):
        print(line)
    if session.overflows:
        _note(
            f"{session.overflows} block(s) of audio were lost (input overflow); the computer could not keep "
            "up, so detections may be missing"
        )
    return 0


def _detect(args: argparse.Namespace) -> int:
    model_path, audio = _split_inputs(args)
    if args.mic and audio:
        raise UsageError("pass audio files or --mic, not both")
    if not args.mic and not audio:
        raise UsageError("give one or more audio files after the model, or --mic to listen live")
    if not args.mic and (args.device is not None or args.duration is not None):
        raise UsageError("--device and --duration only apply with --mic")
    if args.save_detections:
        from mww.evaluate.false_wakes import detection_folder

        detection_folder(args.save_detections)  # refused before anything runs
    model = _load(args, model_path)
    return _run_mic(args, model) if args.mic else _run_files(args, model, audio)


def main(argv: list[str] | None = None) -> int:
    """Entry point of mww-detect; returns the exit status."""
    return run_command(PROG, _parser(), _detect, argv)


if __name__ == "__main__":
    raise SystemExit(main())
