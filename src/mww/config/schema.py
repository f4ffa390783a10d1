"""The configuration schema: typed dataclasses whose defaults are the `standard` preset.

Each field carries its validation rules in `dataclasses.field(metadata=...)` (see `setting`);
`mww.config.validate.validate_config` walks these dataclasses and enforces them, using the type hints.
Loading and merging live in `mww.config.load`.

Rules a field may declare (all optional):
  min / max          inclusive bounds (for lists: on every item)
  gt / lt            exclusive bounds (for lists: on every item)
  choices            allowed values
  fixed              the only allowed value (device constants)
  min_len            minimum length of a list
  not_blank          the string must contain more than whitespace
  pattern            regular expression the whole string must match (with `pattern_hint`)
  path               list[str] items are paths, resolved like `Path` fields
  per_phase          list must have one entry per `training_steps` phase
  ge_field / gt_field  must be >= / > another field of the same section
  disjoint_with      list must share no item with another field of the same section
  sum_below          (other_field, limit): this + other must be < limit
  blocks             "ints" or "kernels": a model block string (with `block_min`, `block_choices`)
"""

# ruff: noqa: RUF009 - `setting` returns a dataclasses.field, which ruff cannot see.

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from mww.device.constants import (
    IMMUTABLE_HARDWARE,
    INPUT_DTYPE,
    MEL_BINS,
    MINIMUM_ESPHOME_VERSION,
    OUTPUT_DTYPE,
    SAMPLE_RATE_HZ,
    STREAMING_STRIDE,
    frames_for_duration_ms,
)
from mww.device.pymicro import MAX_SHIPPED_CUTOFF

KNOWN_RULES = frozenset(
    {
        "min",
        "max",
        "gt",
        "lt",
        "choices",
        "fixed",
        "min_len",
        "not_blank",
        "pattern",
        "pattern_hint",
        "path",
        "per_phase",
        "ge_field",
        "gt_field",
        "disjoint_with",
        "sum_below",
        "blocks",
        "block_min",
        "block_choices",
    }
)

ARCHITECTURES = ("mixednet", "dnn", "cnn", "crnn")
# Validation metrics that checkpoint selection can follow (`training.minimization_metric` and
# `training.maximization_metric`): the names of the trainer's validation metrics where lower, or
# higher, is better. The recall-in-noise ones need background audio in the dataset.
LOWER_IS_BETTER_METRICS = (
    "ambient_false_positives_per_hour",
    "ambient_false_activations",
    "operating_point_fah",
    "hard_negative_false_detection_rate",
    "eer",
)
HIGHER_IS_BETTER_METRICS = (
    "average_viable_recall",
    "recall_at_2_fah",
    "recall_at_target_fah",
    "recall_at_no_fa",
    "operating_point_recall",
    "operating_point_recall_in_noise_20db",
    "operating_point_recall_in_noise_10db",
    "streaming_recall",
    "auc_roc",
    "f1",
    "recall",
    "precision",
    "accuracy",
)
CLUSTERING_METHODS = ("agglomerative", "threshold")
# What a precomputed feature set is used for: training negatives, ambient audio for FA/h, or both.
FEATURE_SET_ROLES = ("training", "ambient", "both")
FEATURE_SET_TRUNCATIONS = ("random", "end")
AUGMENTATION_NAMES = (
    "SevenBandParametricEQ",
    "TanhDistortion",
    "PitchShift",
    "BandStopFilter",
    "AddColorNoise",
    "AddBackgroundNoise",
    "Gain",
    "RIR",
)

_INT = r"\s*[+-]?\d+\s*"
_INT_LIST = re.compile(rf"{_INT}(,{_INT})*")
_KERNEL_GROUP = r"\s*\[[^\[\]]*\]\s*"
_KERNEL_LISTS = re.compile(rf"{_KERNEL_GROUP}(,{_KERNEL_GROUP})*")


def setting(default: Any, **rules: Any) -> Any:
    """A dataclass field with `default` and validation `rules` kept in its metadata."""
    unknown = set(rules) - KNOWN_RULES
    if unknown:
        raise TypeError(f"unknown validation rule(s) {sorted(unknown)}")
    if isinstance(default, list):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=rules)
    return field(default=default, metadata=rules)


def parse_int_list(text: str) -> list[int]:
    """Parse "60,60,60" into [60, 60, 60]; ValueError if it is not comma-separated integers."""
    if not isinstance(text, str) or not _INT_LIST.fullmatch(text):
        raise ValueError(f"{text!r} is not a comma-separated list of whole numbers")
    return [int(part) for part in text.split(",")]


def parse_kernel_lists(text: str) -> list[list[int]]:
    """Parse "[5],[3,9]" into [[5], [3, 9]]; ValueError if malformed."""
    if not isinstance(text, str) or not _KERNEL_LISTS.fullmatch(text):
        raise ValueError(f"{text!r} is not a comma-separated list of bracketed kernel-size lists")
    groups = re.findall(r"\[([^\[\]]*)\]", text)
    return [parse_int_list(group) for group in groups]


BLOCK_PARSERS = {"ints": parse_int_list, "kernels": parse_kernel_lists}


@dataclass
class HardwareConfig:
    """Audio front end. Everything but `clip_duration_ms` is fixed by the ESPHome device."""

    sample_rate_hz: int = setting(
        IMMUTABLE_HARDWARE["sample_rate_hz"], fixed=IMMUTABLE_HARDWARE["sample_rate_hz"]
    )
    mel_bins: int = setting(IMMUTABLE_HARDWARE["mel_bins"], fixed=IMMUTABLE_HARDWARE["mel_bins"])
    window_size_ms: int = setting(
        IMMUTABLE_HARDWARE["window_size_ms"], fixed=IMMUTABLE_HARDWARE["window_size_ms"]
    )
    window_step_ms: int = setting(
        IMMUTABLE_HARDWARE["window_step_ms"], fixed=IMMUTABLE_HARDWARE["window_step_ms"]
    )
    clip_duration_ms: int = setting(1000, min=500, max=3000)

    @property
    def clip_samples(self) -> int:
        """Samples in one training clip."""
        return self.clip_duration_ms * SAMPLE_RATE_HZ // 1000

    @property
    def clip_frames(self) -> int:
        """Front-end feature frames in one training clip."""
        return frames_for_duration_ms(self.clip_duration_ms)


@dataclass
class PathsConfig:
    """Dataset and output folders; relative paths resolve against the working directory at load time."""

    positive_dir: Path = setting(Path("./dataset/positive"))
    negative_dir: Path = setting(Path("./dataset/negative"))
    hard_negative_dir: Path = setting(Path("./dataset/hard_negative"))
    background_dir: Path = setting(Path("./dataset/background"))
    rir_dir: Path = setting(Path("./dataset/rirs"))
    ambient_dir: Path = setting(Path("./dataset/ambient"))
    false_wake_dir: Path = setting(Path("./dataset/false_wakes"))  # recordings that woke the device
    processed_dir: Path = setting(Path("./data/processed"))
    checkpoint_dir: Path = setting(Path("./checkpoints"))
    export_dir: Path = setting(Path("./models/exported"))


@dataclass
class FeatureSetConfig:
    """One precomputed feature set: `<path>/{training,validation_ambient,testing_ambient}/*_mmap`
    folders of uint16 spectrograms (mww.data.feature_sets). Every entry needs `path`."""

    path: Path = field(metadata={})
    sampling_weight: float = setting(1.0, min=0)  # share in a batch, beside the dataset's sources
    class_weight: float | None = setting(None, min=0)  # null: training.negative_class_weight
    truncation: str = setting("random", choices=FEATURE_SET_TRUNCATIONS)  # which window of an array
    role: str = setting("training", choices=FEATURE_SET_ROLES)


@dataclass
class DataConfig:
    """Clip acceptance limits and the train/validation/test split."""

    min_duration_s: float = setting(0.2, gt=0)
    max_positive_duration_s: float = setting(5.0, gt_field="min_duration_s")
    max_negative_duration_s: float = setting(3600.0, gt_field="min_duration_s")
    silence_threshold_dbfs: float = setting(-60.0, max=0)
    validation_fraction: float = setting(0.1, min=0, max=0.5, sum_below=("test_fraction", 1.0))
    test_fraction: float = setting(0.1, min=0, max=0.5)
    split_seed: int = setting(1234, min=0)
    test_speakers: list[str] = setting([])
    validation_speakers: list[str] = setting([], disjoint_with="test_speakers")
    # Precomputed feature sets (mww.data.feature_sets): training negatives and/or ambient audio.
    feature_sets: list[FeatureSetConfig] = setting([])


@dataclass
class TrainingConfig:
    """Step-based training in phases; every per-phase list has one entry per phase."""

    training_steps: list[int] = setting([20000, 10000], min=1, min_len=1)
    learning_rates: list[float] = setting([0.001, 0.0001], gt=0, per_phase=True)
    batch_size: int = setting(128, min=1)
    eval_step_interval: int = setting(500, min=1)
    seed: int = setting(0, min=0)  # data order, masks and initialisation follow it
    ema_decay: float = setting(0.99, min=0, lt=1)  # >0: validate and save an average of the weights
    positive_sampling_weight: float = setting(1.0, min=0)  # share of each source in a batch
    negative_sampling_weight: float = setting(1.0, min=0)
    hard_negative_sampling_weight: float = setting(0.5, min=0)
    false_wake_sampling_weight: float = setting(0.25, min=0)
    positive_class_weight: list[float] = setting([1.0, 1.0], min=0, per_phase=True)
    negative_class_weight: list[float] = setting([20.0, 20.0], min=0, per_phase=True)
    hard_negative_class_weight: list[float] = setting([40.0, 40.0], min=0, per_phase=True)
    false_wake_class_weight: float | None = setting(None, min=0)  # null: hard_negative_class_weight
    time_mask_max_size: list[int] = setting([0, 0], min=0, per_phase=True)
    time_mask_count: list[int] = setting([0, 0], min=0, per_phase=True)
    freq_mask_max_size: list[int] = setting([0, 0], min=0, max=MEL_BINS, per_phase=True)
    freq_mask_count: list[int] = setting([0, 0], min=0, per_phase=True)
    # Selection (`mww.train.checkpoints.is_better`): the lowest minimization metric until it is at or
    # below selection_target (null: target_minimization, which is also the FA/h the shipped cutoff is
    # calibrated to), then the highest maximization metric among those within it.
    minimization_metric: str = setting("operating_point_fah", choices=LOWER_IS_BETTER_METRICS)
    target_minimization: float = setting(0.5, min=0)
    selection_target: float | None = setting(2.0, min=0)
    maximization_metric: str = setting("recall_at_2_fah", choices=HIGHER_IS_BETTER_METRICS)
    # Checkpoint selection compares the mean of both metrics over this many validations in a row
    # (this one and those before it), so one lucky validation is not what gets shipped; 1: no smoothing.
    selection_smoothing: int = setting(3, min=1)

    @property
    def num_phases(self) -> int:
        """Number of training phases."""
        return len(self.training_steps)

    @property
    def total_steps(self) -> int:
        """Training steps over all phases."""
        return sum(self.training_steps)


@dataclass
class ModelConfig:
    """Network architecture; the four block strings describe the MixedNet blocks."""

    architecture: str = setting("mixednet", choices=ARCHITECTURES)
    first_conv_filters: int = setting(30, min=1)
    first_conv_kernel_size: int = setting(5, min=1)
    stride: int = setting(STREAMING_STRIDE, min=1)  # feature frames per streaming step
    pointwise_filters: str = setting("60,60,60,60", blocks="ints", block_min=1)
    mixconv_kernel_sizes: str = setting("[5],[9],[13],[21]", blocks="kernels", block_min=1)
    repeat_in_block: str = setting("1,1,1,1", blocks="ints", block_min=1)
    residual_connection: str = setting("0,0,0,0", blocks="ints", block_choices=(0, 1))
    dropout_rate: float = setting(0.0, min=0, lt=1)
    l2_regularization: float = setting(0.0, min=0)

    @property
    def pointwise_filters_list(self) -> list[int]:
        """`pointwise_filters` parsed, one int per block."""
        return parse_int_list(self.pointwise_filters)

    @property
    def mixconv_kernel_sizes_list(self) -> list[list[int]]:
        """`mixconv_kernel_sizes` parsed, one list of kernel sizes per block."""
        return parse_kernel_lists(self.mixconv_kernel_sizes)

    @property
    def repeat_in_block_list(self) -> list[int]:
        """`repeat_in_block` parsed, one int per block."""
        return parse_int_list(self.repeat_in_block)

    @property
    def residual_connection_list(self) -> list[bool]:
        """`residual_connection` parsed, one flag per block."""
        return [bool(flag) for flag in parse_int_list(self.residual_connection)]

    @property
    def num_blocks(self) -> int:
        """Number of MixedNet blocks."""
        return len(self.pointwise_filters_list)


@dataclass
class AugmentationConfig:
    """Waveform augmentation; the CamelCase keys are per-clip probabilities of each transform."""

    enabled: bool = setting(True)
    SevenBandParametricEQ: float = setting(0.1, min=0, max=1)
    TanhDistortion: float = setting(0.1, min=0, max=1)
    PitchShift: float = setting(0.1, min=0, max=1)
    BandStopFilter: float = setting(0.1, min=0, max=1)
    AddColorNoise: float = setting(0.1, min=0, max=1)
    AddBackgroundNoise: float = setting(0.75, min=0, max=1)
    Gain: float = setting(1.0, min=0, max=1)
    RIR: float = setting(0.5, min=0, max=1)
    background_min_snr_db: float = setting(-5.0)
    background_max_snr_db: float = setting(10.0, ge_field="background_min_snr_db")
    min_jitter_s: float = setting(0.195, min=0)
    max_jitter_s: float = setting(0.205, min=0, ge_field="min_jitter_s")
    impulse_paths: list[str] = setting([], path=True)
    background_paths: list[str] = setting([], path=True)
    augmentation_duration_s: float = setting(3.2, gt=0)
    variants_per_clip: int = setting(4, min=1)  # augmented variants stored per clip (off: 1)

    def probabilities(self) -> dict[str, float]:
        """Probability of each transform, keyed by its CamelCase name."""
        return {name: getattr(self, name) for name in AUGMENTATION_NAMES}


@dataclass
class PerformanceConfig:
    """Workers, precision, profiling and TensorBoard."""

    gpu_only: bool = setting(False)
    mixed_precision: bool = setting(True)
    num_workers: int = setting(0, min=0)
    num_threads_per_worker: int = setting(1, min=1)
    prefetch_factor: int = setting(2, min=1)
    max_memory_gb: float = setting(0.0, min=0)
    inter_op_parallelism: int = setting(0, min=0)
    intra_op_parallelism: int = setting(0, min=0)
    enable_profiling: bool = setting(False)
    profile_every_n_steps: int = setting(100, min=1)
    profile_output_dir: Path = setting(Path("./profiles"))
    tensorboard_enabled: bool = setting(True)
    tensorboard_log_dir: Path = setting(Path("./logs"))

    def resolved_num_workers(self) -> int:
        """Worker count to use: `num_workers`, or every CPU core when it is 0."""
        return self.num_workers or (os.cpu_count() or 1)


@dataclass
class SpeakerClusteringConfig:
    """Grouping positive clips by voice when folders do not name speakers."""

    enabled: bool = setting(False)
    method: str = setting("agglomerative", choices=CLUSTERING_METHODS)
    embedding_model: str = setting("speechbrain/spkrec-ecapa-voxceleb", not_blank=True)
    similarity_threshold: float = setting(0.72, min=-1, max=1)
    n_clusters: int | None = setting(None, min=1)
    leakage_audit_enabled: bool = setting(True)
    near_duplicate_threshold: float = setting(0.95, min=-1, max=1)  # audit: clips this similar are copies
    # With enabled: ingestion takes speakers from this namelist (mww-cluster-analyze), files stay put.
    namelist: Path | None = setting(None)


@dataclass
class HardNegativeMiningConfig:
    """Mining false positives during training; the interval counts evaluation rounds ("epochs")."""

    enabled: bool = setting(True)
    fp_threshold: float = setting(0.8, min=0, max=1)
    max_samples: int = setting(5000, min=0)
    mining_interval_epochs: int = setting(5, min=1)


@dataclass
class ExportConfig:
    """TFLite export and the ESPHome manifest."""

    wake_word: str = setting("Hey Computer", not_blank=True)
    author: str = setting("")
    website: str = setting("")
    trained_languages: list[str] = setting(["en"])
    quantize: bool = setting(True)
    inference_input_type: str = setting(INPUT_DTYPE, fixed=INPUT_DTYPE)
    inference_output_type: str = setting(OUTPUT_DTYPE, fixed=OUTPUT_DTYPE)
    probability_cutoff: float = setting(0.97, gt=0, lt=1)
    sliding_window_size: int = setting(5, min=1)
    tensor_arena_size: int = setting(0, min=0)
    minimum_esphome_version: str = setting(
        MINIMUM_ESPHOME_VERSION, pattern=r"\d{4}\.\d{1,2}\.\d+", pattern_hint="a version like '2024.7.0'"
    )


@dataclass
class AutoTuningConfig:
    """mww-autotune: short fine-tuning bursts from a checkpoint between evaluations on the validation split.

    Class weights start at the last training phase's; a step multiplies one of them (never above its
    cap). The cutoff and window of every evaluation are searched within the ranges below (the evaluation
    sweeps windows 1 to 10). A result is "not worse" than the starting checkpoint when its recall is at
    most `recall_tolerance` lower and its FA/h at most `fah_tolerance` higher (or it meets both targets).
    A burst whose result is worse than the best beyond the tolerances (it drifted) is undone, and later
    bursts run at `drift_learning_rate_factor` times its learning rate.
    """

    burst_steps: int = setting(500, min=1)  # fine-tuning steps between two evaluations
    burst_learning_rate: float = setting(0.0001, gt=0)
    drift_learning_rate_factor: float = setting(0.5, gt=0, max=1)  # on the learning rate after a drift
    positive_weight_step: float = setting(1.25, gt=1)  # factor on the positive class weight
    max_positive_weight: float = setting(8.0, gt=0)
    hard_negative_weight_step: float = setting(1.5, gt=1)  # factor on the (mined) hard-negative weight
    max_hard_negative_weight: float = setting(200.0, gt=0)
    cutoff_min: float = setting(0.05, gt=0, lt=1)
    # Never above the highest cutoff both runtimes can fire at (`mww.device.pymicro`).
    cutoff_max: float = setting(MAX_SHIPPED_CUTOFF, gt=0, max=MAX_SHIPPED_CUTOFF, ge_field="cutoff_min")
    # The FA/h target must also hold this far below the chosen cutoff: headroom for unheard audio.
    cutoff_margin: float = setting(0.05, min=0, lt=1)
    window_min: int = setting(3, min=1, max=10)  # one or two outputs alone are a noisy moment
    window_max: int = setting(10, min=1, max=10, ge_field="window_min")
    recall_tolerance: float = setting(0.02, min=0, max=1)
    fah_tolerance: float = setting(0.1, min=0)
    mining_fp_threshold: float = setting(0.5, min=0, max=1)  # training negatives scoring this high are mined
    mining_max_samples: int = setting(2000, min=0)  # mined windows added per iteration, highest first
    seed: int = setting(0, min=0)  # batch order and SpecAugment masks of the bursts


@dataclass
class MwwConfig:
    """The whole configuration: one attribute per section."""

    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    speaker_clustering: SpeakerClusteringConfig = field(default_factory=SpeakerClusteringConfig)
    hard_negative_mining: HardNegativeMiningConfig = field(default_factory=HardNegativeMiningConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    auto_tuning: AutoTuningConfig = field(default_factory=AutoTuningConfig)

    # Where each dotted key's final value came from; filled in by the loader.
    _sources: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain YAML-serializable data (paths as strings), sections and keys in schema order."""
        return {
            section.name: {
                item.name: _plain(getattr(getattr(self, section.name), item.name))
                for item in dataclasses.fields(getattr(self, section.name))
            }
            for section in dataclasses.fields(self)
        }

    def source_of(self, key: str) -> str:
        """The file that set dotted `key` (e.g. "training.batch_size"), or "the built-in defaults"."""
        section = key.split(".", 1)[0]
        return self._sources.get(key) or self._sources.get(section) or "the built-in defaults"


SECTION_TYPES: dict[str, type] = {
    item.name: item.default_factory  # type: ignore[misc]
    for item in dataclasses.fields(MwwConfig)
}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
