"""Evaluating an exported model on any folders of recordings (`mww-evaluate --positives DIR --ambient
DIR`): a user's own voice, their kitchen, a night of TV, with the same report, JSON and plots as a
split of the dataset.

Every positive recording is one utterance heard by a device that has been listening: it is streamed
after one model input window of silence and before `TAIL_S` of it, through the device's own front end
(a fresh instance per recording), so every moment of it is scored. Every ambient recording is one
device start, streamed whole; false activations per hour are counted over their measured duration.
An ambient recording is read from its file block by block and fed through the device's front end and
TFLite Micro as it is read (`mww.device.runtime.recording_outputs`), so an evening of TV takes the
memory of one block; only the model's outputs are kept (one byte per 30 ms). Every file is checked
before the first is run.
Folders are walked like the dataset (`mww.data.ingest.discover`: linked folders followed, each real
file once). Files must be what the device hears, 16 kHz mono 16-bit, unless `convert` resamples them.
A positive recording with no sound in it (its peak below the config's silence threshold) is left out
and named in the notes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mww.config.schema import MwwConfig
from mww.data.ingest import discover, first_folder
from mww.data.sources import EvalData
from mww.device.audio import audio_info
from mww.device.constants import SAMPLE_RATE_HZ, WINDOW_STEP_MS
from mww.device.features import frontend_uint16, silence_output_u8, uint16_to_float
from mww.device.pymicro import check_rule
from mww.device.runtime import (
    WakeWordModel,
    read_device_pcm16,
    read_device_pcm16_blocks,
    recording_outputs,
)
from mww.evaluate.measure import Evaluation, Settings, measure
from mww.evaluate.outputs import first_scored_invocation, run_outputs, tflite_outputs_fn
from mww.evaluate.report import write_outputs
from mww.evaluate.run import EvaluateError, exported_model
from mww.model.plan import training_input_frames

TAIL_S = 1.0  # silence streamed after each positive recording: the device goes on listening
_SAMPLES_PER_FRAME = SAMPLE_RATE_HZ * WINDOW_STEP_MS // 1000


def _recordings(folder: Path, what: str, flag: str) -> list[Path]:
    if not folder.is_dir():
        raise EvaluateError(
            f"The {what} folder {folder} does not exist or is not a folder. Pass {flag} with a folder of "
            "WAV recordings (16 kHz mono 16-bit, or add --convert)."
        )
    files = discover(folder)
    if not files:
        raise EvaluateError(
            f"No audio files were found under the {what} folder {folder}. Put WAV recordings there "
            f"(subfolders are searched too), or pass another folder with {flag}."
        )
    return files


def _peak_dbfs(pcm: np.ndarray) -> float:
    peak = int(np.max(np.abs(pcm.astype(np.int32)))) if pcm.size else 0
    return 20.0 * float(np.log10(peak / 32768.0)) if peak > 0 else float("-inf")


def folder_eval_data(
    positives_dir: str | os.PathLike[str],
    ambient_dir: str | os.PathLike[str],
    input_frames: int,
    *,
    convert: bool = False,
    silence_dbfs: float = -60.0,
) -> tuple[EvalData, list[str]]:
    """The evaluation set of two folders, and notes on what was left out. The ambient recordings are
    checked and listed (`ambient_paths`) but not read: `ambient_outputs` streams them, and gives their
    measured durations."""
    pos_root, amb_root = Path(positives_dir), Path(ambient_dir)
    positive_files = _recordings(pos_root, "positives", "--positives")
    ambient_files = _recordings(amb_root, "ambient", "--ambient")
    for path in ambient_files:  # a recording in the wrong format stops here, before hours of work
        read_device_pcm16_blocks(path, convert=convert)
    lead = np.zeros(input_frames * _SAMPLES_PER_FRAME, dtype=np.int16)
    tail = np.zeros(int(TAIL_S * SAMPLE_RATE_HZ), dtype=np.int16)
    streams, paths, speakers, notes = [], [], [], []
    for path in positive_files:
        pcm = read_device_pcm16(path, convert=convert)
        peak = _peak_dbfs(pcm)
        if peak < silence_dbfs:
            notes.append(
                f"left out {path}: it holds no sound (peak {peak:.1f} dBFS, below {silence_dbfs:g} dBFS), "
                "so it cannot hold the wake word"
            )
            continue
        streams.append(uint16_to_float(frontend_uint16(np.concatenate([lead, pcm, tail]))))
        paths.append(path)
        speakers.append(first_folder(path, pos_root) or pos_root.name)
    if not streams:
        raise EvaluateError(
            f"None of the {len(positive_files)} recordings under {pos_root} holds any sound (every peak is "
            f"below {silence_dbfs:g} dBFS). Record the wake word again, closer to the microphone."
        )
    data = EvalData(
        windows=np.zeros((0, input_frames, streams[0].shape[1]), np.float32),
        labels=np.zeros(0, np.float32),
        kinds=[],
        positive_streams=streams,
        positive_paths=paths,
        negative_streams=[],
        hard_negative_streams=[],
        ambient_streams=[],  # streamed from their files: `ambient_outputs`
        ambient_paths=list(ambient_files),
        ambient_seconds=0.0,
        positive_speakers=speakers,
        negative_seconds=0.0,
        stream_offsets_s={p: input_frames * WINDOW_STEP_MS / 1000.0 for p in paths},
    )
    return data, notes


def ambient_outputs(
    model: WakeWordModel, files: Sequence[Path], input_frames: int, *, convert: bool = False
) -> tuple[list[np.ndarray], list[float]]:
    """(uint8 outputs from the first scored invocation on, measured seconds) of each ambient recording,
    one device start each, streamed from its file block by block. Every file is checked before the first
    is run (AudioError names the bad one)."""
    readers = [read_device_pcm16_blocks(path, convert=convert) for path in files]
    skip = first_scored_invocation(input_frames, model.stride)
    outputs, seconds = [], []
    for blocks in readers:
        out, samples = recording_outputs(model, blocks)
        outputs.append(out[skip:])
        seconds.append(samples / SAMPLE_RATE_HZ)
    return outputs, seconds


def evaluate_folders(
    config: MwwConfig,
    *,
    tflite: str | os.PathLike[str] | None,
    manifest: str | os.PathLike[str] | None,
    positives: str | os.PathLike[str],
    ambient: str | os.PathLike[str],
    rule: str = "esphome",
    convert: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """Evaluate an exported model (its cutoff and window from its manifest) on two folders of recordings."""
    say = log or (lambda _message: None)
    check_rule(rule)
    stride = config.model.stride
    model = exported_model(tflite, manifest, stride)
    if model is None:
        raise EvaluateError(
            "Folder mode evaluates an exported model: pass --tflite MODEL.tflite (its manifest beside it, "
            "or --manifest MODEL.json)."
        )
    input_frames = training_input_frames(config.hardware, config.model)
    data, notes = folder_eval_data(
        positives, ambient, input_frames, convert=convert, silence_dbfs=config.data.silence_threshold_dbfs
    )
    hours = sum(audio_info(p)[1] for p in data.ambient_paths) / 3600.0
    say(
        f"evaluating {model.tflite_path} on {len(data.positive_streams)} positive recordings and "
        f"{hours * 60:.1f} min of ambient audio"
    )
    outputs_fn = tflite_outputs_fn(model, input_frames)
    out = run_outputs(data, outputs_fn)
    out.ambient, durations = ambient_outputs(model, data.ambient_paths, input_frames, convert=convert)
    data.ambient_durations, data.ambient_seconds = durations, float(sum(durations))
    where = f"the manifest {model.manifest_path}" if model.manifest_path else "the command line"
    settings = Settings(model.probability_cutoff, model.sliding_window_size, where, rule)
    measured = measure(
        data,
        out,
        settings,
        input_frames=input_frames,
        stride=stride,
        target_fah=config.training.target_minimization,
        default=(config.export.probability_cutoff, config.export.sliding_window_size),
        silence_u8=silence_output_u8(outputs_fn),
    )
    result = Evaluation(
        model={
            "kind": "tflite",
            "path": str(model.tflite_path),
            "input_frames": input_frames,
            "stride": stride,
        },
        split=f"folders: positives {positives}, ambient {ambient}",
        **measured,
    )
    result.notes += notes
    if output_dir is not None:
        result.files = write_outputs(result, Path(output_dir))
    return result
