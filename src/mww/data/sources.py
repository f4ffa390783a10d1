"""Everything training reads: augmented training sources and device-placed evaluation sets.

Training examples come from the augmented store (several variants per clip, made ahead of
training, each placed by the end of its last sound); validation clips are placed in the same
window without augmentation, and streamed to the detector as a device hears them (`clip_stream`:
one input window of silence before the whole recording, trailing silence and all, and
`mww.data.augment.STREAM_TAIL_S` of silence after it); ambient recordings are scored as the device
streams them, from their clean features. Precomputed feature sets (`mww.data.feature_sets`) add
training negatives and ambient audio; false wakes (`paths.false_wake_dir`) are hard negatives of
their own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mww.config.schema import AUGMENTATION_NAMES, AugmentationConfig, MwwConfig
from mww.data.augment import (
    AugmentResult,
    Variant,
    augment_clips,
    augmentation_files,
    open_augmented_store,
)
from mww.data.feature_sets import FeatureSet, ambient_streams, open_feature_sets, training_sources
from mww.data.feature_store import FeatureStore
from mww.data.ingest import Clip
from mww.data.placement import SAVED_AFTER_S, chunk_count, stream_lead_frames
from mww.data.prepare import PreparedData, prepare_data
from mww.data.sampler import Source
from mww.device.constants import WINDOW_SIZE_MS, WINDOW_STEP_MS, frames_for_duration_ms
from mww.device.features import uint16_to_float
from mww.errors import MwwError

logger = logging.getLogger(__name__)

TRAIN_KINDS = ("positive", "negative", "hard_negative", "false_wake")
NOISE_SNRS_DB = (20.0, 10.0)  # recall in noise: background audio mixed into the positives at these SNRs


def noise_key(snr_db: float) -> str:
    """Metrics key of the recall in noise at `snr_db` ("operating_point_recall_in_noise_20db")."""
    return f"operating_point_recall_in_noise_{snr_db:g}db"


LABELS = {"positive": 1, "negative": 0, "hard_negative": 0, "false_wake": 0}


class PoolEntry(NamedTuple):
    """One negative variant that mining may draw windows from."""

    key: str
    path: Path
    end_frame: int  # where the clip's audio ends in the variant
    duration_s: float  # how much of the source file the variant holds
    start_s: float = 0.0  # where that audio starts in the source file (a piece of a long recording)


class TrainDataError(MwwError):
    """The dataset cannot be trained on; the message says what to do."""


@dataclass
class EvalData:
    """One split, ready to score: clip windows, positive clips as streams, ambient streams."""

    windows: np.ndarray  # float32 [N, T, 40]: the window ending where training decides (placed by sound)
    labels: np.ndarray  # [N]
    kinds: list[str]
    positive_streams: list[np.ndarray]  # float32 [frames, 40] per positive recording (`clip_stream`)
    positive_paths: list[Path]
    negative_streams: list[np.ndarray]  # float32 [frames, 40] per negative (as positives; long ones whole)
    hard_negative_streams: list[np.ndarray]  # float32 [frames, 40] per hard negative (as positives)
    ambient_streams: list[np.ndarray]  # float32 [frames, 40] per ambient recording (clean)
    ambient_paths: list[Path]
    ambient_seconds: float  # measured duration of the ambient audio
    negative_paths: list[Path] = field(default_factory=list)
    hard_negative_paths: list[Path] = field(default_factory=list)
    positive_speakers: list[str] = field(default_factory=list)
    ambient_durations: list[float] = field(default_factory=list)  # measured seconds per recording
    noise_streams: dict[float, list[np.ndarray]] = field(default_factory=dict)  # positives in noise, by SNR
    # Per positive, negative and hard-negative clip (in that order): model invocations from the
    # moment training decides on it (just after its last sound) to the end of its stream (the
    # recording's trailing silence and the stream's tail). Empty: 0 for every clip (the stream ends
    # at that moment).
    silence_after: list[int] = field(default_factory=list)
    # Seconds of recording the negative streams hold (their FA/h listening time; the silence a stream
    # adds after a clip is not counted). None: the time their outputs cover.
    negative_seconds: float | None = None
    # Where each clip's recording starts in its stream (seconds), for times reported in the file.
    stream_offsets_s: dict[Path, float] = field(default_factory=dict)
    false_wake_streams: list[np.ndarray] = field(default_factory=list)  # per false wake (as positives)
    false_wake_paths: list[Path] = field(default_factory=list)
    # Per ambient stream: "ambient" (the dataset's folder) or the feature set it comes from. Empty: all
    # from the folder.
    ambient_sources: list[str] = field(default_factory=list)

    @property
    def ambient_hours(self) -> float:
        """Measured ambient duration in hours."""
        return self.ambient_seconds / 3600.0


@dataclass
class TrainingData:
    """Sources for the sampler, the negative pool for mining, and the validation set."""

    sources: list[Source]
    train_store: FeatureStore
    negative_pool: list[PoolEntry]
    validation: EvalData
    prepared: PreparedData
    counts: dict[str, int] = field(default_factory=dict)


def _split(prepared: PreparedData, kind: str, split: str) -> list[Clip]:
    return [c for c in prepared.ingest.of(kind, split) if c.path in prepared.features.keys]


def check_dataset(prepared: PreparedData, config: MwwConfig, feature_sets: Sequence[FeatureSet] = ()) -> None:
    """Refuse datasets that cannot give a meaningful model, with what to do about it (an ambient
    feature set stands in for ambient recordings)."""
    paths = config.paths
    problems = []
    if not _split(prepared, "positive", "train"):
        problems.append(
            f"no usable positive clips in the training split (folder {paths.positive_dir}; see "
            f"{prepared.ingest.report_path} for skipped files)"
        )
    if not _split(prepared, "positive", "validation"):
        problems.append(
            "no positive clips in the validation split: add speakers (at least 3 speaker folders under "
            f"{paths.positive_dir}) or raise data.validation_fraction"
        )
    if not _split(prepared, "negative", "train"):
        problems.append(f"no usable negative clips in the training split (folder {paths.negative_dir})")
    if not _split(prepared, "ambient", "validation") and not any(
        fs.config.role != "training" for fs in feature_sets
    ):
        problems.append(
            f"no ambient recordings in the validation split (folder {paths.ambient_dir}): false activations "
            "per hour are measured on long everyday recordings; put at least two there (mww-generate makes "
            "them for the demo)"
        )
    if problems:
        raise TrainDataError("The dataset cannot be trained on: " + "; ".join(problems) + ".")


def check_window(config: MwwConfig, input_frames: int) -> None:
    """Refuse a training window (`augmentation.augmentation_duration_s`) too short for the model's
    input: every training example and every evaluation window is cut from one, and the evaluation
    streams' lead of silence is one."""
    window_s = config.augmentation.augmentation_duration_s
    if frames_for_duration_ms(window_s * 1000.0) >= input_frames:
        return
    needed_ms = (input_frames - 1) * WINDOW_STEP_MS + WINDOW_SIZE_MS
    suggest = math.ceil(needed_ms / 100.0) / 10.0
    raise TrainDataError(
        f"'augmentation.augmentation_duration_s' is {window_s:g} s, shorter than the model's input "
        f"window of {needed_ms / 1000:g} s ({input_frames} feature frames: "
        f"'hardware.clip_duration_ms' {config.hardware.clip_duration_ms} plus the model's receptive "
        "field), so no training or evaluation window can hold one input. Set "
        f"'augmentation.augmentation_duration_s' to at least {suggest:g} s, or shorten "
        "'hardware.clip_duration_ms'."
    )


def check_selection_metrics(config: MwwConfig, background: Sequence[Path]) -> None:
    """Refuse a checkpoint-selection metric that this dataset cannot measure (recall in noise with
    no background audio), before any augmentation or training time is spent."""
    if background:
        return
    training = config.training
    for key in ("minimization_metric", "maximization_metric"):
        name = getattr(training, key)
        if name in {noise_key(snr) for snr in NOISE_SNRS_DB}:
            raise TrainDataError(
                f"'training.{key}' is '{name}', but the dataset has no background audio (folder "
                f"{config.paths.background_dir}, plus 'augmentation.background_paths') to mix into the "
                "validation positives, so recall in noise cannot be measured and no checkpoint could be "
                "selected by it. Add background recordings (noise, music, speech babble; mww-generate makes "
                "them for the demo) or choose another metric, such as 'average_viable_recall'."
            )


def _placed(
    config: MwwConfig, clips: list[Clip], workers: int, progress: bool, as_stream: bool = False
) -> tuple[AugmentResult, FeatureStore]:
    """Clips without augmentation, one variant each (of a long negative: its first piece): placed
    in the training window by the end of their sound, as training places them, or (`as_stream`)
    each whole recording with silence before and after it, as the device hears it."""
    plain = replace(config, augmentation=replace(config.augmentation, enabled=False))
    store = open_augmented_store(config.paths.processed_dir, plain.augmentation, [], [], as_stream)
    result = augment_clips(
        clips,
        plain,
        store,
        workers,
        progress,
        background_files=[],
        rir_files=[],
        first_only=True,
        as_stream=as_stream,
    )
    return result, store


def _dropped_lead(aug_cfg: AugmentationConfig, input_frames: int) -> int:
    """Frames of an evaluation stream's silent lead that `clip_stream` drops: all but one input window."""
    return max(0, stream_lead_frames(aug_cfg) - input_frames)


def clip_stream(features: np.ndarray, aug_cfg: AugmentationConfig, input_frames: int) -> np.ndarray:
    """The evaluation stream of one recording, from its stored stream features: the silence before
    it cut to one input window, so that the first scored invocation ends where the recording starts
    and every later moment of it is scored, as on a device that was listening before it."""
    return features[_dropped_lead(aug_cfg, input_frames) :]


def _first_variant(
    result: AugmentResult, store: FeatureStore, path: Path, input_frames: int
) -> tuple[Variant, np.ndarray] | None:
    """A clip's first stored variant and its float features; None when it has none, or when they
    are shorter than one model input."""
    variants = result.variants.get(path)
    if not variants:
        return None
    features = uint16_to_float(np.asarray(store.get(variants[0].key)))
    return None if features.shape[0] < input_frames else (variants[0], features)


def _invocations_after_decision(
    window: int, placed: Variant, stream: int, recording: Variant, stride: int
) -> int:
    """Invocations in a clip's stream (`stream` frames, the recording ending at frame
    `recording.end_frame`) after the moment training decides on the clip: as long after its last
    sound as the training window (`window` frames, the sound ending at `placed.end_frame`) ends."""
    trailing = round(max(0.0, recording.length_s - placed.length_s) * 1000.0 / WINDOW_STEP_MS)
    decision = recording.end_frame - trailing + (window - placed.end_frame)
    return max(0, round((stream - decision) / stride))


def in_noise_settings(aug_cfg: AugmentationConfig, snr_db: float) -> AugmentationConfig:
    """Augmentation that only mixes in background audio, always, at exactly `snr_db`. In evaluation
    streams the SNR is the recording's power (over its file, its own silences included) against the
    noise's; the silence the stream adds before and after it does not count."""
    only_noise = {name: 0.0 for name in AUGMENTATION_NAMES} | {"AddBackgroundNoise": 1.0}
    return replace(
        aug_cfg,
        enabled=True,
        background_min_snr_db=snr_db,
        background_max_snr_db=snr_db,
        variants_per_clip=1,
        **only_noise,
    )


def positives_in_noise(
    config: MwwConfig,
    prepared: PreparedData,
    split: str,
    snr_db: float,
    background: list[Path],
    input_frames: int,
    progress: bool = False,
) -> dict[Path, np.ndarray]:
    """The positive clips of `split` as evaluation streams (`clip_stream`), with background audio
    mixed in at `snr_db` all along: float feature streams by clip path (cached in the augmented
    store like training variants, so a second evaluation reuses them). Clips that cannot be mixed
    are left out."""
    noisy = replace(config, augmentation=in_noise_settings(config.augmentation, snr_db))
    store = open_augmented_store(config.paths.processed_dir, noisy.augmentation, background, [], True)
    clips = _split(prepared, "positive", split)
    workers = config.performance.resolved_num_workers()
    result = augment_clips(
        clips,
        noisy,
        store,
        workers,
        progress,
        background_files=background,
        rir_files=[],
        first_only=True,
        as_stream=True,
    )
    return {
        path: clip_stream(
            uint16_to_float(np.asarray(store.get(variants[0].key))), noisy.augmentation, input_frames
        )
        for path, variants in result.variants.items()
    }


@dataclass
class _ClipSets:
    """The clips of one evaluation split that have features: their windows and streams, by kind."""

    windows: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    positive_streams: list[np.ndarray] = field(default_factory=list)
    positive_paths: list[Path] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    negative_streams: list[np.ndarray] = field(default_factory=list)
    negative_paths: list[Path] = field(default_factory=list)
    hard_negative_streams: list[np.ndarray] = field(default_factory=list)
    hard_negative_paths: list[Path] = field(default_factory=list)
    false_wake_streams: list[np.ndarray] = field(default_factory=list)
    false_wake_paths: list[Path] = field(default_factory=list)
    after: dict[str, list[int]] = field(default_factory=lambda: {kind: [] for kind in TRAIN_KINDS})
    negative_seconds: float = 0.0
    offsets: dict[Path, float] = field(default_factory=dict)

    def add(self, clip: Clip, window: np.ndarray, stream: np.ndarray, held_s: float, after: int) -> None:
        """One clip: its window, its stream, and the invocations its stream holds after the decision."""
        self.after[clip.kind].append(after)
        self.windows.append(window)
        self.labels.append(LABELS[clip.kind])
        self.kinds.append(clip.kind)
        if clip.kind == "positive":
            self.positive_streams.append(stream)
            self.positive_paths.append(clip.path)
            self.speakers.append(clip.speaker or "unknown")
        elif clip.kind == "negative":
            self.negative_streams.append(stream)
            self.negative_paths.append(clip.path)
            self.negative_seconds += held_s
        elif clip.kind == "false_wake":
            self.false_wake_streams.append(stream)
            self.false_wake_paths.append(clip.path)
        else:
            self.hard_negative_streams.append(stream)
            self.hard_negative_paths.append(clip.path)


def _whole_file_keys(
    prepared: PreparedData, clips: Sequence[Clip], aug_cfg: AugmentationConfig
) -> dict[Path, str]:
    """The file features of each long negative: it is streamed whole from them, not as a recording."""
    return {
        c.path: prepared.features.keys[c.path]
        for c in clips
        if chunk_count(c.kind, c.duration_s, aug_cfg) > 1 and c.path in prepared.features.keys
    }


def _clip_sets(
    config: MwwConfig, prepared: PreparedData, clips: list[Clip], input_frames: int, progress: bool
) -> _ClipSets:
    """Place every clip as training does and stream it as a device hears it; clips without
    features (or shorter than one model input) are left out."""
    workers = config.performance.resolved_num_workers()
    aug_cfg = config.augmentation
    whole_files = _whole_file_keys(prepared, clips, aug_cfg)
    placed, store = _placed(config, clips, workers, progress)
    as_made, as_made_store = _placed(
        config, [c for c in clips if c.path not in whole_files], workers, progress, as_stream=True
    )
    # where each recording starts in its stream, once the lead is cut to one input window
    recording_start_s = aug_cfg.augmentation_duration_s - _dropped_lead(aug_cfg, input_frames) * (
        WINDOW_STEP_MS / 1000.0
    )
    sets = _ClipSets()
    for clip in clips:
        first = _first_variant(placed, store, clip.path, input_frames)
        if first is None:
            continue
        placement, window = first
        if clip.path in whole_files:  # stream it whole, not only its first piece
            features = prepared.store.floats(whole_files[clip.path])
            after = 0
            held_s = max(0, features.shape[0] - input_frames) * WINDOW_STEP_MS / 1000.0  # what is scored
        else:
            made = _first_variant(as_made, as_made_store, clip.path, input_frames)
            if made is None:
                continue
            recording, features = made
            held_s = recording.length_s
            after = _invocations_after_decision(
                window.shape[0], placement, features.shape[0], recording, config.model.stride
            )
            sets.offsets[clip.path] = recording_start_s
            features = clip_stream(features, aug_cfg, input_frames)
        sets.add(clip, window[-input_frames:], features, held_s, after)
    return sets


def _assembled(
    sets: _ClipSets, ambient: list[Clip], ambient_streams: list[np.ndarray], input_frames: int, width: int
) -> EvalData:
    """The evaluation set from the placed clips and the ambient recordings with their streams."""
    return EvalData(
        windows=np.stack(sets.windows) if sets.windows else np.zeros((0, input_frames, width), np.float32),
        labels=np.asarray(sets.labels, dtype=np.float32),
        kinds=sets.kinds,
        positive_streams=sets.positive_streams,
        positive_paths=sets.positive_paths,
        negative_streams=sets.negative_streams,
        hard_negative_streams=sets.hard_negative_streams,
        ambient_streams=ambient_streams,
        ambient_paths=[c.path for c in ambient],
        ambient_seconds=float(sum(c.duration_s for c in ambient)),
        negative_paths=sets.negative_paths,
        hard_negative_paths=sets.hard_negative_paths,
        positive_speakers=sets.speakers,
        ambient_durations=[float(c.duration_s) for c in ambient],
        silence_after=[n for kind in TRAIN_KINDS for n in sets.after[kind]],
        negative_seconds=sets.negative_seconds,
        stream_offsets_s=sets.offsets,
        false_wake_streams=sets.false_wake_streams,
        false_wake_paths=sets.false_wake_paths,
        ambient_sources=["ambient"] * len(ambient),
    )


def eval_data(
    config: MwwConfig,
    prepared: PreparedData,
    split: str,
    input_frames: int,
    progress: bool = False,
    feature_sets: Sequence[FeatureSet] | None = None,
) -> EvalData:
    """The evaluation set of one split (validation or test).

    The clip windows are placed as in training (by the end of each clip's sound); the streams the
    detector runs on are the whole recordings as a device hears them (`clip_stream`), trailing
    silence and all, since the device goes on listening after the wake word. The ambient arrays of
    the config's feature sets (`feature_sets`, else opened here) follow the ambient recordings.
    """
    check_window(config, input_frames)
    sets_of_config = open_feature_sets(config) if feature_sets is None else feature_sets
    clips = [c for kind in TRAIN_KINDS for c in _split(prepared, kind, split)]
    sets = _clip_sets(config, prepared, clips, input_frames, progress)
    ambient = _split(prepared, "ambient", split)
    ambient_features = [
        prepared.store.floats(prepared.features.keys[c.path]) for c in ambient
    ]  # read from the store as they are streamed: a recording of hours is never whole in memory
    data = _assembled(sets, ambient, ambient_features, input_frames, prepared.store.width)
    extra = ambient_streams(sets_of_config, split, input_frames)
    data.ambient_streams += extra.streams
    data.ambient_paths += extra.paths
    data.ambient_durations += extra.seconds
    data.ambient_sources += extra.sets
    data.ambient_seconds += float(sum(extra.seconds))
    return data


def _dataset_sources(
    config: MwwConfig, train_clips: list[Clip], augmented: AugmentResult, store: FeatureStore
) -> tuple[list[Source], dict[str, int], list[PoolEntry]]:
    """The sampler's sources of the dataset's folders, their example counts, and the pool mining
    draws from (the negatives' and the false wakes' variants)."""
    training = config.training
    weights = {
        "positive": training.positive_sampling_weight,
        "negative": training.negative_sampling_weight,
        "hard_negative": training.hard_negative_sampling_weight,
        "false_wake": training.false_wake_sampling_weight,
    }
    # Positives may end up to one sliding window of invocations before the window end, so the
    # model learns to stay high for the whole detection window, not for one frame.
    end_jitter = {
        "positive": config.export.sliding_window_size * config.model.stride,
        "negative": 0,
        # A false wake's windows end anywhere in its last SAVED_AFTER_S + max_jitter_s seconds, where the
        # moment that woke the device is in a recording `mww-detect --save-detections` saved.
        "false_wake": frames_for_duration_ms((SAVED_AFTER_S + config.augmentation.max_jitter_s) * 1000.0),
    }
    sources, counts, pool = [], {}, []
    for kind in TRAIN_KINDS:
        variants = [(c, v) for c in train_clips if c.kind == kind for v in augmented.variants.get(c.path, [])]
        counts[kind] = len(variants)
        truncation = "random" if kind == "negative" else "end"
        jitter = end_jitter.get(kind, end_jitter["positive"])
        sources.append(
            Source(
                kind,
                LABELS[kind],
                weights[kind],
                truncation,
                store,
                [v.key for _, v in variants],
                end_jitter=jitter,
            )
        )
        if kind in ("negative", "false_wake"):
            pool += [PoolEntry(v.key, c.path, v.end_frame, v.length_s, v.start_s) for c, v in variants]
    return sources, counts, pool


def build_training_data(config: MwwConfig, input_frames: int, progress: bool = True) -> TrainingData:
    """Prepare, check, augment and assemble everything one training run reads."""
    check_window(config, input_frames)
    background, rirs = augmentation_files(config)
    check_selection_metrics(config, background)
    feature_sets = open_feature_sets(config)  # refused before any time is spent
    prepared = prepare_data(config, progress=progress)
    check_dataset(prepared, config, feature_sets)
    workers = config.performance.resolved_num_workers()
    train_clips = [c for kind in TRAIN_KINDS for c in _split(prepared, kind, "train")]
    store = open_augmented_store(config.paths.processed_dir, config.augmentation, background, rirs)
    augmented = augment_clips(
        train_clips, config, store, workers, progress, background_files=background, rir_files=rirs
    )
    sources, counts, pool = _dataset_sources(config, train_clips, augmented, store)
    set_sources, set_counts = training_sources(feature_sets)
    validation = eval_data(config, prepared, "validation", input_frames, progress, feature_sets)
    if background:
        validation.noise_streams = {
            snr: list(
                positives_in_noise(
                    config, prepared, "validation", snr, background, input_frames, progress
                ).values()
            )
            for snr in NOISE_SNRS_DB
        }
    return TrainingData(sources + set_sources, store, pool, validation, prepared, counts | set_counts)
