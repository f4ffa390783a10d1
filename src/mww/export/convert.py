"""Export a trained checkpoint as a streaming int8 TFLite model plus its ESPHome v2 manifest.

`convert_model_saved(checkpoint, output_dir, model_name, config)`:

1. rebuilds the non-streaming model of `config.model` and loads the checkpoint into it
   (`mww.train.checkpoints.load_checkpoint`; a missing, corrupt or mismatched checkpoint is an
   ExportError);
2. copies the weights into the stateful streaming twin (`mww.model.streaming.StreamingModel`, input
   [1, stride, 40], ring buffers in resource variables) and saves it as a SavedModel;
3. converts it with the TFLite converter: int8 weights and activations, variables quantized too
   (no DEQUANTIZE), int8 input, uint8 output. The representative dataset is the training features
   (positives and negatives played as one stream, clipped to the input range), fed in
   stride-sized chunks in stream order so the ring buffers hold realistic history; one value is
   pinned to 0 and one to 26, so the input range is exactly [0, 26], which gives the device's
   input scale 26/255 and zero point -128;
4. measures the tensor arena in TFLite Micro and adds the margin of
   `mww.device.tflm_arena.declared_arena_size` (unless `export.tensor_arena_size` is positive), writes
   the manifest (`mww.export.manifest`), and verifies model and manifest with
   `mww.export.verify.verify_model`;
5. writes `esphome.yaml`, the `micro_wake_word:` block to paste into the device's YAML
   (`mww.export.esphome`), for int8 exports.

Everything is written into a staging folder inside the output folder and renamed into place only
after verification passed, so a failed export (a full disk included) leaves no half-written model
behind; the manifest is renamed last, so an interrupted one never leaves a model beside a manifest
that does not belong to it (`_publish`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mww.atomic import signals_deferred
from mww.config.schema import MwwConfig
from mww.device.constants import FEATURE_MAX_FLOAT, MEL_BINS
from mww.device.detection import probabilities_to_uint8
from mww.device.features import uint16_to_float
from mww.device.runtime import device_chunks, run_invocations
from mww.device.tflm_arena import declared_arena_size
from mww.export.errors import ExportError
from mww.export.esphome import write_esphome_yaml
from mww.export.manifest import Calibration, generate_manifest, load_calibration, measure_arena
from mww.export.verify import VerificationResult, verify_model
from mww.model.builder import count_parameters, macs_per_step
from mww.model.plan import receptive_field_frames, streaming_states
from mww.train.checkpoints import CheckpointError, load_checkpoint

# At most this many stride-sized chunks of training features calibrate the quantization.
REPRESENTATIVE_MAX_CHUNKS = 20000
REPRESENTATIVE_KINDS = ("positive", "hard_negative", "negative")
CLIP_FRAMES_LIMIT = 500  # frames taken from one clip, so one long recording cannot fill the budget
STREAMING_DIR = "streaming"
# Steps of the quantized model compared with the float streaming model after conversion.
QUANTIZATION_CHECK_STEPS = 300

Log = Callable[[str], None]


@dataclass
class ExportResult:
    """What an export wrote and measured."""

    tflite_path: Path
    manifest_path: Path
    streaming_dir: Path
    quantized: bool
    input_frames: int
    receptive_field_frames: int
    parameters: int
    macs_per_step: int
    ring_buffers: int
    model_size_bytes: int
    measured_arena: int
    tensor_arena_size: int
    calibration: Calibration
    max_quantization_error_steps: int | None = None
    verification: Any = None
    manifest: dict[str, Any] = field(default_factory=dict)
    esphome_yaml_path: Path | None = None

    def summary_lines(self) -> list[str]:
        """Human-readable lines for the CLI and logs."""
        lines = [
            f"model: {self.tflite_path} ({self.model_size_bytes} bytes, "
            f"{'int8' if self.quantized else 'float32 (debug only, will not run on the device)'})",
            f"manifest: {self.manifest_path}",
            f"streaming SavedModel: {self.streaming_dir}",
            *([f"ESPHome YAML block: {self.esphome_yaml_path}"] if self.esphome_yaml_path else []),
            f"network: {self.parameters} parameters, {self.macs_per_step} MACs per step, input "
            f"{self.input_frames} frames, receptive field {self.receptive_field_frames} frames, "
            f"{self.ring_buffers} ring buffers",
            f"tensor arena: measured {self.measured_arena} B in TFLite Micro, declared "
            f"{self.tensor_arena_size} B",
            f"detection: probability_cutoff {self.calibration.probability_cutoff}, sliding_window_size "
            f"{self.calibration.sliding_window_size} (from {self.calibration.source})",
        ]
        if self.calibration.warning:
            lines.append(f"warning: {self.calibration.warning}")
        if self.max_quantization_error_steps is not None:
            lines.append(
                f"quantization: int8 model within {self.max_quantization_error_steps} uint8 step(s) of the "
                f"float streaming model over {QUANTIZATION_CHECK_STEPS} steps of training features"
            )
        if self.verification is not None:
            lines.append(f"ESPHome verification: {'passed' if self.verification.ok else 'FAILED'}")
        return lines


# --------------------------------------------------------------------------- representative data


def training_feature_clips(
    config: MwwConfig, max_frames: int | None = None, log: Log | None = None
) -> list[np.ndarray]:
    """Float features of training clips for calibration: positives, hard negatives and negatives.

    Clips of the train split (all splits when a kind has none there) are drawn in a seeded random
    order, one of each kind in turn, at most `CLIP_FRAMES_LIMIT` frames of each, until `max_frames`
    frames (default: enough for `REPRESENTATIVE_MAX_CHUNKS` chunks) are collected.
    """
    from mww.data.feature_store import FeatureStoreError
    from mww.data.ingest import IngestError
    from mww.data.prepare import prepare_data

    if max_frames is None:
        max_frames = REPRESENTATIVE_MAX_CHUNKS * config.model.stride
    try:
        prepared = prepare_data(config, progress=False)
    except (IngestError, FeatureStoreError, OSError) as exc:
        raise ExportError(
            f"The representative dataset for int8 quantization comes from the training features, but the "
            f"dataset of this config could not be prepared: {exc} Export with the config used for training "
            "(its paths section must point at the dataset)."
        ) from exc
    rng = np.random.default_rng(config.data.split_seed)
    queues: dict[str, list[Any]] = {}
    for kind in REPRESENTATIVE_KINDS:
        clips = [c for c in prepared.ingest.of(kind) if c.path in prepared.features.keys]
        chosen = [c for c in clips if c.split == "train"] or clips
        queues[kind] = [chosen[i] for i in rng.permutation(len(chosen))]
    if not queues["positive"] or not any(queues[k] for k in REPRESENTATIVE_KINDS if k != "positive"):
        counts = ", ".join(f"{len(v)} {k}" for k, v in queues.items())
        raise ExportError(
            f"The representative dataset needs training features of positives and negatives, but the "
            f"dataset of this config has {counts} usable clips (positive_dir {config.paths.positive_dir}, "
            f"negative_dir {config.paths.negative_dir}). Export with the config used for training."
        )
    features: list[np.ndarray] = []
    used = dict.fromkeys(REPRESENTATIVE_KINDS, 0)
    total, index = 0, 0
    while total < max_frames and any(index < len(q) for q in queues.values()):
        for kind, queue in queues.items():
            if index < len(queue) and total < max_frames:
                stored = prepared.store.get(prepared.features.keys[queue[index].path])
                clip = uint16_to_float(np.asarray(stored[: min(CLIP_FRAMES_LIMIT, max_frames - total)]))
                features.append(clip)
                total += clip.shape[0]
                used[kind] += 1
        index += 1
    if log:
        log(
            "representative data: "
            + ", ".join(f"{n} {k}" for k, n in used.items())
            + f" clips, {total} frames"
        )
    return features


def representative_chunks(
    clips: Sequence[np.ndarray], stride: int, max_chunks: int = REPRESENTATIVE_MAX_CHUNKS
) -> list[np.ndarray]:
    """[1, stride, 40] float chunks of `clips` played as one stream, for the converter's calibration.

    The clips are concatenated (as the device hears one continuous stream) and cut into
    stride-sized chunks in order, so clip boundaries fall at every phase of the strided first layer.
    Features are clipped to [0, 26], the range the device's int8 input covers, and one value of the
    first chunk is set to 0 and one to 26, so the converter's input range comes out exactly [0, 26]
    (scale 26/255, zero point -128). Only two values are pinned: a whole frame at the maximum would
    widen the ranges of every later layer and cost them precision.
    """
    limit = max_chunks * stride
    parts, total = [], 0
    for clip in clips:
        if total >= limit:
            break
        parts.append(np.asarray(clip[: limit - total], dtype=np.float32))
        total += parts[-1].shape[0]
    frames = (total // stride) * stride
    stream = np.clip(np.concatenate(parts)[:frames], 0.0, FEATURE_MAX_FLOAT) if frames else None
    if stream is None:
        stream = np.zeros((stride, MEL_BINS), dtype=np.float32)
    stream[0, 0] = 0.0
    stream[0, 1] = FEATURE_MAX_FLOAT
    return [stream[None, start : start + stride] for start in range(0, stream.shape[0], stride)]


# --------------------------------------------------------------------------- conversion


def _convert(saved_dir: Path, chunks: Sequence[np.ndarray] | None, quantize: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir))
    if quantize:
        assert chunks is not None

        def representative() -> Iterator[list[np.ndarray]]:
            for chunk in chunks:
                yield [chunk]

        converter.optimizations = {tf.lite.Optimize.DEFAULT}
        # Quantize the ring-buffer variables as well; otherwise DEQUANTIZE ops appear.
        converter._experimental_variable_quantization = True
        converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS_INT8}
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.uint8
        converter.representative_dataset = representative
    else:
        converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS}
    return converter.convert()


def tflm_stream(model_bytes: bytes, features: np.ndarray, arena_size: int, stride: int) -> np.ndarray:
    """Run an int8 model in TFLite Micro over float `features` (frames, 40) as the device does.

    Each `stride`-frame chunk is quantized with the device's integer rule; returns the uint8 outputs
    as int64 (so differences between output streams do not wrap around).
    """
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
    return run_invocations(interpreter, device_chunks(features, stride)).astype(np.int64)


def _quantization_error(
    model_bytes: bytes, streaming: Any, chunks: Sequence[np.ndarray], arena: int, stride: int
) -> int:
    """Largest uint8 difference between TFLite Micro and the float streaming model on `chunks`."""
    data = chunks[:QUANTIZATION_CHECK_STEPS]
    if not data:
        return 0
    features = np.concatenate([c[0] for c in data], axis=0)
    streaming.reset()
    expected = probabilities_to_uint8(streaming.run(features)).astype(np.int64)
    streaming.reset()
    got = tflm_stream(model_bytes, features, arena, stride)
    return int(np.max(np.abs(got - expected)))


# --------------------------------------------------------------------------- the steps of an export


def _check_model_name(model_name: str) -> None:
    if not model_name or Path(model_name).name != model_name or model_name.startswith("."):
        raise ExportError(
            f"The model name {model_name!r} is not a plain file name. Pass a name like 'hey_computer' "
            "(letters, digits, '_' or '-'); .tflite and .json are added to it."
        )


def _load_model(checkpoint: Path, config: MwwConfig) -> Any:
    """The checkpoint in the config's non-streaming model; ExportError when it does not load."""
    try:
        return load_checkpoint(checkpoint, config)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc


def _save_streaming(streaming: Any, folder: Path) -> Path:
    """The streaming model as a SavedModel whose serving signature is one step."""
    import tensorflow as tf

    tf.saved_model.save(
        streaming, str(folder), signatures={"serving_default": streaming.step.get_concrete_function()}
    )
    return folder


def _calibration_chunks(
    config: MwwConfig, representative_features: Sequence[np.ndarray] | None, say: Log
) -> list[np.ndarray]:
    """The representative dataset: the given features, else the training features, in stride chunks."""
    stride = config.model.stride
    clips = (
        list(representative_features)
        if representative_features is not None
        else training_feature_clips(config, log=say)
    )
    chunks = representative_chunks(clips, stride)
    say(f"calibrating int8 quantization on {len(chunks)} chunks of {stride} frames")
    return chunks


def _to_tflite(saved: Path, chunks: Sequence[np.ndarray] | None, quantize: bool, checkpoint: Path) -> bytes:
    try:
        return _convert(saved, chunks, quantize)
    except Exception as exc:  # the converter raises many types; all mean the same to the user
        raise ExportError(
            f"The TFLite converter failed on the streaming model of {checkpoint} "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}). "
            "This is a bug in the exporter for this architecture; report it with the config."
        ) from exc


def _verify(tflite: Path, manifest: Path, checkpoint: Path) -> VerificationResult:
    """ESPHome's checks of the staged model and manifest; ExportError when any fails."""
    verification = verify_model(tflite, manifest)
    if not verification.ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in verification.failed)
        raise ExportError(
            f"The model exported from {checkpoint} fails the ESPHome checks ({failed}), so it was "
            "not written. This is a bug in the exporter for this architecture; report it with the "
            "config."
        )
    return verification


def _stage(
    staging: Path,
    output: Path,
    model: Any,
    checkpoint: Path,
    model_name: str,
    config: MwwConfig,
    calibration: Calibration,
    *,
    quantize: bool,
    representative_features: Sequence[np.ndarray] | None,
    say: Log,
) -> ExportResult:
    """Write the streaming SavedModel, the .tflite, its manifest and (int8) esphome.yaml into
    `staging`, verified; returns the export as it will be once published into `output`."""
    from mww.model.streaming import StreamingModel

    stride = config.model.stride
    streaming = StreamingModel(model, config.model)
    saved = _save_streaming(streaming, staging / STREAMING_DIR)
    chunks = _calibration_chunks(config, representative_features, say) if quantize else None
    model_bytes = _to_tflite(saved, chunks, quantize, checkpoint)
    tflite_name, manifest_name = f"{model_name}.tflite", f"{model_name}.json"
    (staging / tflite_name).write_bytes(model_bytes)
    measured = measure_arena(model_bytes, f"the converted model of {checkpoint}")
    fixed = config.export.tensor_arena_size
    arena = fixed if fixed > 0 else declared_arena_size(measured)
    manifest = generate_manifest(
        staging / tflite_name,
        config,
        staging / manifest_name,
        tensor_arena_size=arena,
        probability_cutoff=calibration.probability_cutoff,
        sliding_window_size=calibration.sliding_window_size,
    )
    verification, error_steps, yaml = None, None, None
    if quantize:  # a float debug model does not run on the device: not verified, no YAML block
        assert chunks is not None
        verification = _verify(staging / tflite_name, staging / manifest_name, checkpoint)
        error_steps = _quantization_error(model_bytes, streaming, chunks, measured, stride)
        yaml = write_esphome_yaml(staging / manifest_name, published_dir=output)
    frames = int(model.input_shape[1])
    return ExportResult(
        tflite_path=output / tflite_name,
        manifest_path=output / manifest_name,
        streaming_dir=output / STREAMING_DIR,
        quantized=quantize,
        input_frames=frames,
        receptive_field_frames=receptive_field_frames(config.model),
        parameters=count_parameters(model),
        macs_per_step=macs_per_step(config.model, frames),
        ring_buffers=len(streaming_states(config.model, frames)),
        model_size_bytes=len(model_bytes),
        measured_arena=measured,
        tensor_arena_size=arena,
        calibration=calibration,
        max_quantization_error_steps=error_steps,
        esphome_yaml_path=output / yaml.name if yaml else None,
        verification=verification,
        manifest=manifest,
    )


# --------------------------------------------------------------------------- staging and publishing


def _staging_dir(output_dir: Path) -> Path:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".mww-export-", dir=output_dir))
    except OSError as exc:
        raise ExportError(
            f"The output folder {output_dir} is not writable ({exc.strerror or exc}). Pass an --output "
            "folder you may write to, or fix its permissions; nothing was exported."
        ) from exc


def _publish(staging: Path, output_dir: Path, model: str, manifest: str, others: Sequence[str]) -> None:
    """Move the staged export into `output_dir`, each file by one rename, the manifest last.

    The manifest is what ESPHome, mww-detect and mww-verify start from, so it is the commit point: the
    earlier manifest of this name leaves first, and the new one arrives only once its model and the rest
    are in place. Wherever the renames stop (a crash, a kill), the folder holds the earlier export, a
    model without a manifest, or the new export: never a model beside a manifest that does not belong
    to it. Ctrl-C and SIGTERM wait until the renames are done."""
    with signals_deferred():
        if (output_dir / manifest).exists():
            os.replace(output_dir / manifest, staging / f"{manifest}.previous")
        target = output_dir / STREAMING_DIR
        if target.exists():
            os.replace(target, staging / f"{STREAMING_DIR}.previous")
        os.replace(staging / STREAMING_DIR, target)
        for name in [model, *others, manifest]:
            os.replace(staging / name, output_dir / name)


def convert_model_saved(
    checkpoint_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    model_name: str,
    config: MwwConfig,
    quantize: bool = True,
    *,
    calibration_path: str | os.PathLike[str] | None = None,
    representative_features: Sequence[np.ndarray] | None = None,
    log: Log | None = None,
) -> ExportResult:
    """Export `checkpoint_path` to `<output_dir>/<model_name>.tflite`, `.json` and `streaming/`.

    `representative_features` (float (frames, 40) arrays in the training scale) replace the
    training features read through `mww.data.prepare.prepare_data`. `quantize=False` writes a float32
    model for debugging only: it does not satisfy the device contract and is not verified.
    Raises ExportError (one paragraph) for every bad input; nothing is left half-written.
    """
    say = log or (lambda _message: None)
    _check_model_name(model_name)
    checkpoint = Path(checkpoint_path)
    output = Path(output_dir)
    calibration = load_calibration(config, checkpoint, calibration_path)
    model = _load_model(checkpoint, config)
    staging = _staging_dir(output)
    try:
        say(f"loaded {checkpoint}: {config.model.architecture}, input {int(model.input_shape[1])}x{MEL_BINS}")
        result = _stage(
            staging,
            output,
            model,
            checkpoint,
            model_name,
            config,
            calibration,
            quantize=quantize,
            representative_features=representative_features,
            say=say,
        )
        others = [result.esphome_yaml_path.name] if result.esphome_yaml_path is not None else []
        _publish(staging, output, result.tflite_path.name, result.manifest_path.name, others)
    except OSError as exc:
        raise ExportError(
            f"Writing the export to {output} failed ({exc.strerror or exc}). Check the free space and the "
            "permissions of that folder; no half-written model was left there."
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for line in result.summary_lines():
        say(line)
    return result
