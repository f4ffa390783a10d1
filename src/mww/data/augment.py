"""The augmented-variant store, made before training: several augmented variants of every clip.

Waveform augmentation (`mww.data.transforms`) costs far more than a training step, so it runs before
training: each clip is placed into a window of `augmentation_duration_s` (`mww.data.placement`),
augmented `variants_per_clip` times and featurized with the device front end into a FeatureStore under
`processed_dir/augmented/<fingerprint>/`. The fingerprint covers the front end, every augmentation
setting and the content of the background and RIR files, so changing any of them gives a new
store, while variants already stored are reused. `placements.json` in the store folder records,
for each variant, where the clip ends in it and how many seconds of the source file it holds.

A whole clip (anything but a piece of a long negative) is placed by the end of its last sound
(`mww.device.audio.sound_end`), not by the end of the file: a recording that goes on for a second after
the wake word would otherwise put the wake word a second further from the decision.

Evaluation streams (`as_stream`) are the other use: each recording whole, as a device hears it,
with silence before it (so every moment of it can be scored) and after it (`stream_clip`).

A long negative gets at least one variant per piece it is cut into (`chunk_count`).

A variant is keyed `"{file_key}:{variant}:{seed}"` and computed from a random state seeded by that
key alone, so the result does not depend on the worker count or on the order of the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from mww.atomic import atomic_write_json
from mww.config.schema import AugmentationConfig, MwwConfig
from mww.data.feature_store import FeatureStore
from mww.data.featurize import file_key
from mww.data.ingest import Clip, discover
from mww.data.placement import chunk_count, piece_of, piece_span, place_clip, stream_clip
from mww.data.transforms import TRANSFORM_RANGES, build_augmenter, missing_source_warnings
from mww.device.audio import AUDIO_EXTENSIONS, AudioError, load_audio, sound_end
from mww.device.constants import MEL_BINS, SAMPLE_RATE_HZ
from mww.device.features import audio_to_uint16_features, frontend_fingerprint

logger = logging.getLogger(__name__)

# Bump when the way variants are computed changes: it is part of the store fingerprint.
AUGMENT_VERSION = 6
# An evaluation stream goes on this long after its recording ends: the device keeps listening, and
# the detector needs a few invocations after the wake word's end (the training decision point is
# `max_jitter_s` after it; a sliding window of 10 adds 0.3 s) to decide.
STREAM_TAIL_S = 1.0

PLACEMENTS_NAME = "placements.json"
SETTINGS_NAME = "settings.json"
FLUSH_EVERY = 512  # variants buffered before a store append + sidecar write
MIN_VARIANTS_PER_WORKER = 500  # a worker costs ~1.5 s CPU to start (imports, librosa), ~250 variants


class Placement(NamedTuple):
    """Where a variant's clip ends in its window (frames) and how much of the source it holds (s)."""

    end_frame: int
    held_s: float


class Variant(NamedTuple):
    """One stored variant: its store key and the frame index at which the clip ends in it.

    `features[:end_frame]` is everything the device has computed when the clip's last sample arrives.
    """

    key: str
    end_frame: int
    start_s: float = 0.0  # where the variant's audio starts in the source file
    length_s: float = 0.0  # how much of the source file it holds (a whole clip: up to its sound end)


@dataclass
class AugmentResult:
    """The variants of each clip, and what had to be computed."""

    variants: dict[Path, list[Variant]] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0
    failed: dict[Path, str] = field(default_factory=dict)
    store_root: Path | None = None


# --------------------------------------------------------------------------- the store


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for path in paths:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            out.append(path)
    return out


def _audio_under(location: str | Path) -> list[Path]:
    path = Path(location)
    if path.is_file():
        return [path] if path.suffix.lower() in AUDIO_EXTENSIONS else []
    return discover(path)


def augmentation_files(config: MwwConfig) -> tuple[list[Path], list[Path]]:
    """(background files, RIR files): the config's folders plus the augmentation section's extra paths."""
    aug = config.augmentation
    background = [*discover(Path(config.paths.background_dir))]
    for extra in aug.background_paths:
        background += _audio_under(extra)
    rirs = [*discover(Path(config.paths.rir_dir))]
    for extra in aug.impulse_paths:
        rirs += _audio_under(extra)
    return _dedupe(background), _dedupe(rirs)


def effective_variants(aug_cfg: AugmentationConfig) -> int:
    """Variants made per clip: `variants_per_clip`, or 1 when augmentation is off (they would be alike)."""
    return aug_cfg.variants_per_clip if aug_cfg.enabled else 1


def augmentation_settings(
    aug_cfg: AugmentationConfig,
    background_files: Sequence[Path],
    rir_files: Sequence[Path],
    as_stream: bool = False,
) -> dict[str, Any]:
    """Everything that determines the augmented features (the input of the store fingerprint).

    `variants_per_clip` is left out (the variant number is in each key, so more variants extend a
    store), and so are the folder names: the files' contents, in order, stand for them.
    """
    base: dict[str, Any] = {
        "augment_version": AUGMENT_VERSION,
        "frontend": frontend_fingerprint(),
        "enabled": aug_cfg.enabled,
        "augmentation_duration_s": aug_cfg.augmentation_duration_s,
        "min_jitter_s": aug_cfg.min_jitter_s,
        "max_jitter_s": aug_cfg.max_jitter_s,
        "placed_by": "stream" if as_stream else "sound_end",
    }
    if not aug_cfg.enabled:
        return base
    settings = asdict(aug_cfg)
    for unused in ("variants_per_clip", "background_paths", "impulse_paths"):
        settings.pop(unused)
    return {
        **base,
        "settings": settings,
        "transform_ranges": TRANSFORM_RANGES,
        "audiomentations": version("audiomentations"),
        "background": [file_key(path) for path in background_files],
        "rir": [file_key(path) for path in rir_files],
    }


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def augmentation_fingerprint(
    aug_cfg: AugmentationConfig, background_files: Sequence[Path], rir_files: Sequence[Path]
) -> str:
    """A short hash of `augmentation_settings`: the name of the store folder."""
    return _fingerprint(augmentation_settings(aug_cfg, background_files, rir_files))


def open_augmented_store(
    processed_dir: str | Path,
    aug_cfg: AugmentationConfig,
    background_files: Sequence[Path],
    rir_files: Sequence[Path],
    as_stream: bool = False,
) -> FeatureStore:
    """The augmented-feature store for these settings and files, under `processed_dir/augmented/`.

    `as_stream` True: each clip is a whole recording with silence before and after it, trailing
    silence and all (evaluation streams: `stream_clip`); pass the same to `augment_clips`.
    """
    settings = augmentation_settings(aug_cfg, background_files, rir_files, as_stream)
    store = FeatureStore(Path(processed_dir) / "augmented" / _fingerprint(settings), width=MEL_BINS)
    if not (store.root / SETTINGS_NAME).exists():
        atomic_write_json(store.root / SETTINGS_NAME, settings)
    return store


def load_placements(store: FeatureStore) -> dict[str, Placement]:
    """The placement of every variant in `store` (from its `placements.json` sidecar)."""
    path = store.root / PLACEMENTS_NAME
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    return {key: Placement(int(end), float(held)) for key, (end, held) in stored.items()}


def _variant(key: str, placement: Placement, duration_s: float, pieces: int, variant: int) -> Variant:
    return Variant(key, placement.end_frame, piece_span(duration_s, pieces, variant)[0], placement.held_s)


def variant_key(clip_key: str, variant: int, seed: int) -> str:
    """Store key of one variant of the clip whose content hash is `clip_key`."""
    return f"{clip_key}:{variant}:{seed}"


def _seed_of(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


# --------------------------------------------------------------------------- the parallel stage

# path, key, kind, variants, seed, pieces, as an evaluation stream (else placed by the end of its sound)
_Task = tuple[Path, str, str, tuple[int, ...], int, int, bool]
_Output = tuple[Path, int, list[tuple[str, np.ndarray, Placement]], str]
_WORKER: dict[str, Any] = {}


def _init_worker(aug_cfg: AugmentationConfig, background: list[Path], rirs: list[Path]) -> None:
    _WORKER["config"] = aug_cfg
    _WORKER["augmenter"] = build_augmenter(aug_cfg, background, rirs, warn=False)


def _augment_task(task: _Task) -> _Output:
    path, clip_key, kind, variants, seed, pieces, as_stream = task
    aug_cfg: AugmentationConfig = _WORKER["config"]
    augmenter = _WORKER["augmenter"]
    try:
        audio = load_audio(path)
    except AudioError as exc:
        return path, len(variants), [], exc.detail
    if not as_stream and pieces == 1:  # a whole clip is placed by the end of its last sound, not of the file
        audio = audio[: sound_end(audio)]
    outputs = []
    try:
        for variant in variants:
            part = piece_of(audio, variant, pieces)
            key = variant_key(clip_key, variant, seed)
            item_seed = _seed_of(key)
            # audiomentations draws from both `random` and the legacy NumPy state.
            random.seed(item_seed)
            np.random.seed(item_seed % 2**32)
            if as_stream:  # SNRs against the recording's own power, not the stream's with its silence
                placed, end_frame = stream_clip(part, aug_cfg.augmentation_duration_s, STREAM_TAIL_S)
                augmented = augmenter(placed, part.shape[0])
            else:
                placed, end_frame = place_clip(
                    part,
                    aug_cfg.augmentation_duration_s,
                    aug_cfg.min_jitter_s,
                    aug_cfg.max_jitter_s,
                    np.random.default_rng(item_seed),
                    kind,
                )
                augmented = augmenter(placed)
            placement = Placement(end_frame, part.shape[0] / SAMPLE_RATE_HZ)
            outputs.append((key, audio_to_uint16_features(augmented), placement))
    except Exception as exc:  # a transform failing on odd input (e.g. a broken background file)
        return path, len(variants), [], f"augmentation failed: {type(exc).__name__}: {exc}"
    return path, len(variants), outputs, ""


def augment_clips(
    clips: Sequence[Clip],
    config: MwwConfig,
    store: FeatureStore | None = None,
    num_workers: int = 1,
    progress: bool = False,
    seed: int = 0,
    *,
    background_files: Sequence[Path] | None = None,
    rir_files: Sequence[Path] | None = None,
    min_variants_per_worker: int = MIN_VARIANTS_PER_WORKER,
    first_only: bool = False,
    as_stream: bool = False,
) -> AugmentResult:
    """Make sure every clip's augmented variants are in the store; returns their keys and end frames.

    `store` defaults to `open_augmented_store` under `paths.processed_dir`; background and RIR files
    default to `augmentation_files(config)`. Clips that cannot be read end up in `failed`. With
    `first_only` each clip gets its first variant only (of a long negative: its first piece).
    `as_stream` must be what `store` was opened with (see `open_augmented_store`).
    """
    aug_cfg = config.augmentation
    background, rirs = _source_files(config, background_files, rir_files)
    if store is None:
        store = open_augmented_store(config.paths.processed_dir, aug_cfg, background, rirs, as_stream)
    placements = load_placements(store)
    result = AugmentResult(store_root=store.root)
    keys_of, todo = _plan(clips, aug_cfg, store, placements, result, seed, first_only, as_stream)
    if todo:
        for message in missing_source_warnings(aug_cfg, background, rirs):
            logger.warning(message)
        _run(
            todo,
            store,
            placements,
            result,
            aug_cfg,
            background,
            rirs,
            num_workers,
            progress,
            min_variants_per_worker,
        )
    _gather(clips, keys_of, placements, result)
    if result.failed:
        logger.warning(
            "%d clip(s) could not be augmented and are left out, e.g. %s: %s",
            len(result.failed),
            *next(iter(result.failed.items())),
        )
    return result


def _source_files(
    config: MwwConfig, background_files: Sequence[Path] | None, rir_files: Sequence[Path] | None
) -> tuple[list[Path], list[Path]]:
    """The background and RIR files given, those of `augmentation_files(config)` where none are given."""
    if background_files is None or rir_files is None:
        found_background, found_rirs = augmentation_files(config)
        background_files = found_background if background_files is None else background_files
        rir_files = found_rirs if rir_files is None else rir_files
    return list(background_files), list(rir_files)


def _plan(
    clips: Sequence[Clip],
    aug_cfg: AugmentationConfig,
    store: FeatureStore,
    placements: dict[str, Placement],
    result: AugmentResult,
    seed: int,
    first_only: bool,
    as_stream: bool,
) -> tuple[dict[Path, tuple[list[str], int]], list[_Task]]:
    """Each clip's variant keys and pieces, and the tasks that compute the variants not stored yet.

    Variants already stored (or already planned, for a copy of a file) count as reused; a clip that
    cannot be read goes into `result.failed`.
    """
    keys_of: dict[Path, tuple[list[str], int]] = {}  # path -> (variant keys, pieces)
    todo: list[_Task] = []
    pending: set[str] = set()
    for clip in clips:
        try:
            clip_key = file_key(clip.path)
        except OSError as exc:
            result.failed[Path(clip.path)] = f"cannot read the file: {exc}"
            continue
        # at least one variant per piece of a long negative
        pieces = chunk_count(clip.kind, clip.duration_s, aug_cfg)
        count = 1 if first_only else max(effective_variants(aug_cfg), pieces)
        keys = [variant_key(clip_key, v, seed) for v in range(count)]
        keys_of[clip.path] = keys, pieces
        missing = []
        for variant, key in enumerate(keys):
            if (key in store and key in placements) or key in pending:
                result.reused += 1
            else:
                pending.add(key)
                missing.append(variant)
        if missing:
            todo.append((Path(clip.path), clip_key, clip.kind, tuple(missing), seed, pieces, as_stream))
    return keys_of, todo


def _gather(
    clips: Sequence[Clip],
    keys_of: dict[Path, tuple[list[str], int]],
    placements: dict[str, Placement],
    result: AugmentResult,
) -> None:
    """Each planned clip's variants into `result.variants`, once all of them are stored."""
    for clip in clips:
        if clip.path not in keys_of or clip.path in result.failed:
            continue
        keys, pieces = keys_of[clip.path]
        if all(key in placements for key in keys):
            result.variants[clip.path] = [
                _variant(key, placements[key], clip.duration_s, pieces, v) for v, key in enumerate(keys)
            ]
        else:  # a copy of a file whose augmentation failed under another path
            result.failed[clip.path] = "a file with the same content could not be augmented"


def _run(
    todo: list[_Task],
    store: FeatureStore,
    placements: dict[str, Placement],
    result: AugmentResult,
    aug_cfg: AugmentationConfig,
    background: list[Path],
    rirs: list[Path],
    num_workers: int,
    progress: bool,
    min_variants_per_worker: int,
) -> None:
    total = sum(len(task[3]) for task in todo)
    workers = max(1, min(num_workers, total // max(1, min_variants_per_worker) + 1, len(todo)))
    init_args = (aug_cfg, background, rirs)
    features: dict[str, np.ndarray] = {}
    ends: dict[str, Placement] = {}

    def flush() -> None:
        if features:
            store.put_many(features)
            placements.update(ends)
            atomic_write_json(store.root / PLACEMENTS_NAME, {k: list(v) for k, v in placements.items()})
            features.clear()
            ends.clear()

    bar = tqdm(total=total, desc="augment", unit="variant", disable=not progress)
    try:
        if workers == 1:
            _init_worker(*init_args)
            saved = random.getstate(), np.random.get_state()  # the tasks reseed both per variant
            try:
                _collect(map(_augment_task, todo), features, ends, result, bar, flush)
            finally:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
        else:
            with get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
                outputs = pool.imap_unordered(_augment_task, todo, chunksize=2)
                _collect(outputs, features, ends, result, bar, flush)
    finally:
        flush()
        bar.close()


def _collect(
    outputs: Iterable[_Output],
    features: dict[str, np.ndarray],
    ends: dict[str, Placement],
    result: AugmentResult,
    bar: tqdm,
    flush: Callable[[], None],
) -> None:
    for path, requested, variants, error in outputs:
        bar.update(requested)
        if error:
            result.failed[path] = error
            continue
        for key, array, placement in variants:
            features[key] = array
            ends[key] = placement
        result.computed += len(variants)
        if len(features) >= FLUSH_EVERY:
            flush()
