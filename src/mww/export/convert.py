"""Export a trained checkpoint as a streaming int8 TFLite model plus its ESPHome v2 manifest.

`convert_model_saved(checkpoint, output_dir, model_name, config)`:

1. rebuilds the non-streaming model of `config.model` for `training_input_frames` frames and
   loads the checkpoint into it (a missing, corrupt or mismatched checkpoint is an ExportError);
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
   the manifest, and verifies model and manifest with `mww.export.verify.verify_model`;
5. writes `esphome.yaml`, the `micro_wake_word:` block to paste into the device's YAML
   (`mww.export.esphome`), for int8 exports.

Everything is written into a staging folder inside the output folder and renamed into place only
after verification passed, so a failed export leaves no half-written model behind.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mww.atomic import atomic_write_text
from mww.config.schema import MwwConfig
from mww.device.constants import (
    FEATURE_MAX_FLOAT,
    FEATURE_STEP_SIZE_MS,
    MANIFEST_TYPE,
    MANIFEST_VERSION,
    MEL_BINS,
)
from mww.device.detection import probabilities_to_uint8
from mww.device.features import uint16_to_float
from mww.device.runtime import device_chunks, run_invocations
from mww.device.tflite_graph import VerifyError
from mww.device.tflm_arena import declared_arena_size, measure_tensor_arena
from mww.errors import MwwError
from mww.export.verify import verify_model
from mww.model.builder import (
    ModelConfigError,
    build_model,
    count_parameters,
    macs_per_step,
    receptive_field_frames,
    streaming_states,
    training_input_frames,
)
from mww.train.checkpoints import CALIBRATION_FILE

# At most this many stride-sized chunks of training features calibrate the quantization.
REPRESENTATIVE_MAX_CHUNKS = 20000
REPRESENTATIVE_KINDS = ("positive", "hard_negative", "negative")
CLIP_FRAMES_LIMIT = 500  # frames taken from one clip, so one long recording cannot fill the budget
STREAMING_DIR = "streaming"
CHECKPOINT_SUFFIX = ".weights.h5"
# Steps of the quantized model compared with the float streaming model after conversion.
QUANTIZATION_CHECK_STEPS = 300

Log = Callable[[str], None]


class ExportError(MwwError):
    """An export that cannot proceed, explained in one paragraph (file, likely cause, what to do)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass
class Calibration:
    """Detection settings for the manifest and where they came from."""

    probability_cutoff: float
    sliding_window_size: int
    source: str


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
        if self.max_quantization_error_steps is not None:
            lines.append(
                f"quantization: int8 model within {self.max_quantization_error_steps} uint8 step(s) of the "
                f"float streaming model over {QUANTIZATION_CHECK_STEPS} steps of training features"
            )
        if self.verification is not None:
            lines.append(f"ESPHome verification: {'passed' if self.verification.ok else 'FAILED'}")
        return lines


# --------------------------------------------------------------------------- arena and manifest


def _measure_arena(model_bytes: bytes, what: str) -> int:
    try:
        return measure_tensor_arena(model_bytes)
    except VerifyError as exc:
        raise ExportError(
            f"The tensor arena of {what} could not be measured in TFLite Micro: {exc} Set "
            "export.tensor_arena_size to a positive number only if you know the size it needs."
        ) from exc


def build_manifest(
    model_file_name: str,
    config: MwwConfig,
    tensor_arena_size: int,
    probability_cutoff: float,
    sliding_window_size: int,
) -> dict[str, Any]:
    """The ESPHome v2 manifest as a dict, keys in the order ESPHome's documentation shows.

    `author` and `website` are optional in v2; an empty one is left out rather than written as "",
    since ESPHome checks a website it is given as a URL.
    """
    export = config.export
    optional = {k: v for k, v in (("author", export.author), ("website", export.website)) if v.strip()}
    return {
        "type": MANIFEST_TYPE,
        "wake_word": export.wake_word,
        **optional,
        "model": model_file_name,
        "trained_languages": list(export.trained_languages),
        "version": MANIFEST_VERSION,
        "micro": {
            "probability_cutoff": float(probability_cutoff),
            "feature_step_size": FEATURE_STEP_SIZE_MS,
            "sliding_window_size": int(sliding_window_size),
            "tensor_arena_size": int(tensor_arena_size),
            "minimum_esphome_version": export.minimum_esphome_version,
        },
    }


def generate_manifest(
    model_path: str | os.PathLike[str],
    config: MwwConfig,
    output_path: str | os.PathLike[str],
    *,
    tensor_arena_size: int | None = None,
    probability_cutoff: float | None = None,
    sliding_window_size: int | None = None,
) -> dict[str, Any]:
    """Write the v2 manifest of the .tflite at `model_path` to `output_path` (atomically); return it.

    The arena size is `tensor_arena_size`, else `export.tensor_arena_size` when positive, else
    measured in TFLite Micro plus the safety margin. Cutoff and window default to the config's.
    """
    model_path = Path(model_path)
    if tensor_arena_size is None:
        if config.export.tensor_arena_size > 0:
            tensor_arena_size = config.export.tensor_arena_size
        else:
            try:
                data = model_path.read_bytes()
            except OSError as exc:
                raise ExportError(
                    f"The model {model_path} could not be read ({exc.strerror or exc}); the manifest needs "
                    "it to measure the tensor arena. Export the model first."
                ) from exc
            tensor_arena_size = declared_arena_size(_measure_arena(data, str(model_path)))
    manifest = build_manifest(
        model_path.name,
        config,
        tensor_arena_size,
        config.export.probability_cutoff if probability_cutoff is None else probability_cutoff,
        config.export.sliding_window_size if sliding_window_size is None else sliding_window_size,
    )
    try:
        written = atomic_write_text(output_path, json.dumps(manifest, indent=2) + "\n")
        if model_path.is_file():
            # The atomic write's temp file is private (0600); the manifest is as readable as its model.
            os.chmod(written, stat.S_IMODE(model_path.stat().st_mode))
    except OSError as exc:
        raise ExportError(
            f"The manifest {output_path} could not be written ({exc.strerror or exc}). Check that the "
            "folder exists and that you may write to it."
        ) from exc
    return manifest


# --------------------------------------------------------------------------- calibration


def load_calibration(
    config: MwwConfig,
    checkpoint_path: str | os.PathLike[str],
    calibration_path: str | os.PathLike[str] | None = None,
) -> Calibration:
    """Cutoff and window from `calibration_path`, else `<checkpoint folder>/calibration.json`, else config."""
    if calibration_path is None:
        path = Path(checkpoint_path).parent / CALIBRATION_FILE
        if not path.is_file():
            return Calibration(
                config.export.probability_cutoff, config.export.sliding_window_size, "the config"
            )
    else:
        path = Path(calibration_path)
        if not path.is_file():
            raise ExportError(
                f"The calibration file {path} does not exist. Pass the calibration.json written by training "
                "or evaluation, or leave out --calibration to use the config's probability_cutoff and "
                "sliding_window_size."
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(
            f"The calibration file {path} is not readable JSON ({exc}). It should hold "
            '{"probability_cutoff": 0.97, "sliding_window_size": 5}; fix or delete it.'
        ) from exc
    cutoff = data.get("probability_cutoff") if isinstance(data, dict) else None
    window = data.get("sliding_window_size") if isinstance(data, dict) else None
    cutoff_ok = isinstance(cutoff, int | float) and not isinstance(cutoff, bool) and 0 < cutoff < 1
    window_ok = isinstance(window, int) and not isinstance(window, bool) and window >= 1
    if not (cutoff_ok and window_ok):
        raise ExportError(
            f"The calibration file {path} must hold a probability_cutoff between 0 and 1 (exclusive) and "
            f"an integer sliding_window_size >= 1, but it holds {json.dumps(data)[:120]}. Fix or delete it."
        )
    return Calibration(float(cutoff), int(window), str(path))


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


# --------------------------------------------------------------------------- checkpoint


def _h5_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the model weights in a Keras weights file (optimizer state, if saved, is ignored)."""
    import h5py

    layout: dict[str, tuple[int, ...]] = {}
    with h5py.File(path, "r") as handle:

        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset) and name.startswith("layers/"):
                layout[name] = tuple(item.shape)

        handle.visititems(visit)
    return layout


def _describe_model_cfg(config: MwwConfig) -> str:
    m = config.model
    return (
        f"model.architecture '{m.architecture}', first_conv_filters {m.first_conv_filters}, "
        f"first_conv_kernel_size {m.first_conv_kernel_size}, stride {m.stride}, pointwise_filters "
        f"'{m.pointwise_filters}', mixconv_kernel_sizes '{m.mixconv_kernel_sizes}', repeat_in_block "
        f"'{m.repeat_in_block}', residual_connection '{m.residual_connection}', clip_duration_ms "
        f"{config.hardware.clip_duration_ms}"
    )


def load_checkpoint(checkpoint_path: str | os.PathLike[str], config: MwwConfig) -> Any:
    """The non-streaming model of `config` with the checkpoint's weights; ExportError if they do not fit."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ExportError(
            f"The checkpoint {path} does not exist{' (it is a folder)' if path.is_dir() else ''}. Pass the "
            f"{CHECKPOINT_SUFFIX} file written by mww-train, for example checkpoints/best_weights.weights.h5."
        )
    if not path.name.endswith(CHECKPOINT_SUFFIX):
        raise ExportError(
            f"The checkpoint {path} is not a Keras weights file: its name must end in {CHECKPOINT_SUFFIX}, "
            "as the files mww-train writes do. Pass one of those."
        )
    try:
        frames = training_input_frames(config.hardware, config.model)
        model = build_model(config.model, (frames, MEL_BINS))
    except ModelConfigError as exc:
        raise ExportError(f"The model of this config cannot be exported: {exc}") from exc
    try:
        found = _h5_layout(path)
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"The checkpoint {path} is not a readable HDF5 weights file ({exc}). It is probably truncated or "
            "corrupt (an interrupted copy or training run); use another checkpoint or train again."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="mww-export-") as folder:
        reference = Path(folder) / f"expected{CHECKPOINT_SUFFIX}"
        model.save_weights(reference)
        expected = _h5_layout(reference)
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        if shapes:
            key = shapes[0]
            detail = (
                f"weights {key} have shape {found[key]} in the checkpoint but {expected[key]} in the model"
            )
        elif missing:
            detail = f"the checkpoint lacks weights the model has ({missing[0]})"
        else:
            detail = f"the checkpoint holds weights the model lacks ({extra[0]})"
        raise ExportError(
            f"The checkpoint {path} was saved from a different model than the config describes "
            f"({_describe_model_cfg(config)}): {detail}. Export with the same config (and override) that "
            "trained this checkpoint, or pick the checkpoint of this config."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(
            f"The checkpoint {path} could not be loaded into the model of this config "
            f"({_describe_model_cfg(config)}): {str(exc).splitlines()[0]}. It was probably saved from a "
            "different architecture; export with the config that trained it."
        ) from exc
    return model


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


# --------------------------------------------------------------------------- the export


def _staging_dir(output_dir: Path) -> Path:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".mww-export-", dir=output_dir))
    except OSError as exc:
        raise ExportError(
            f"The output folder {output_dir} is not writable ({exc.strerror or exc}). Pass an --output "
            "folder you may write to, or fix its permissions; nothing was exported."
        ) from exc


def _publish(staging: Path, output_dir: Path, names: Sequence[str]) -> None:
    """Move the staged files and the streaming folder into `output_dir` (each by one rename)."""
    target = output_dir / STREAMING_DIR
    if target.exists():
        os.replace(target, staging / f"{STREAMING_DIR}.previous")
    os.replace(staging / STREAMING_DIR, target)
    for name in names:
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
    from mww.model.streaming import StreamingModel

    say = log or (lambda _message: None)
    if not model_name or Path(model_name).name != model_name or model_name.startswith("."):
        raise ExportError(
            f"The model name {model_name!r} is not a plain file name. Pass a name like 'hey_computer' "
            "(letters, digits, '_' or '-'); .tflite and .json are added to it."
        )
    checkpoint = Path(checkpoint_path)
    output = Path(output_dir)
    calibration = load_calibration(config, checkpoint, calibration_path)
    model = load_checkpoint(checkpoint, config)
    frames = int(model.input_shape[1])
    stride = config.model.stride
    staging = _staging_dir(output)
    try:
        say(f"loaded {checkpoint}: {config.model.architecture}, input {frames}x{MEL_BINS}")
        streaming = StreamingModel(model, config.model)
        import tensorflow as tf

        saved = staging / STREAMING_DIR
        tf.saved_model.save(
            streaming, str(saved), signatures={"serving_default": streaming.step.get_concrete_function()}
        )
        chunks = None
        if quantize:
            clips = (
                list(representative_features)
                if representative_features is not None
                else training_feature_clips(config, log=say)
            )
            chunks = representative_chunks(clips, stride)
            say(f"calibrating int8 quantization on {len(chunks)} chunks of {stride} frames")
        try:
            model_bytes = _convert(saved, chunks, quantize)
        except Exception as exc:  # the converter raises many types; all mean the same to the user
            raise ExportError(
                f"The TFLite converter failed on the streaming model of {checkpoint} "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}). "
                "This is a bug in the exporter for this architecture; report it with the config."
            ) from exc
        tflite_name, manifest_name = f"{model_name}.tflite", f"{model_name}.json"
        (staging / tflite_name).write_bytes(model_bytes)
        measured = _measure_arena(model_bytes, f"the converted model of {checkpoint}")
        arena = (
            config.export.tensor_arena_size
            if config.export.tensor_arena_size > 0
            else declared_arena_size(measured)
        )
        manifest = generate_manifest(
            staging / tflite_name,
            config,
            staging / manifest_name,
            tensor_arena_size=arena,
            probability_cutoff=calibration.probability_cutoff,
            sliding_window_size=calibration.sliding_window_size,
        )
        verification = None
        error_steps = None
        if quantize:
            verification = verify_model(staging / tflite_name, staging / manifest_name)
            if not verification.ok:
                failed = "; ".join(f"{c.name}: {c.detail}" for c in verification.failed)
                raise ExportError(
                    f"The model exported from {checkpoint} fails the ESPHome checks ({failed}), so it was "
                    "not written. This is a bug in the exporter for this architecture; report it with the "
                    "config."
                )
            assert chunks is not None
            error_steps = _quantization_error(model_bytes, streaming, chunks, measured, stride)
        from mww.export.esphome import write_esphome_yaml

        names = [tflite_name, manifest_name]
        if quantize:  # the micro_wake_word: block to paste; a float debug model does not run on the device
            names.append(write_esphome_yaml(staging / manifest_name, published_dir=output).name)
        _publish(staging, output, names)
    except OSError as exc:
        raise ExportError(
            f"Writing the export to {output} failed ({exc.strerror or exc}). Check the free space and the "
            "permissions of that folder; no half-written model was left there."
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = ExportResult(
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
        esphome_yaml_path=output / names[2] if len(names) > 2 else None,
        verification=verification,
        manifest=manifest,
    )
    for line in result.summary_lines():
        say(line)
    return result
