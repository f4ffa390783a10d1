"""A synthetic wake-word dataset for trying the pipeline: espeak voices, noise, rooms, ambient speech.

`generate_dataset` is the entry point (mww-generate): it checks the request, refuses, keeps or replaces
what the output folder already holds, plans the files, writes them and the metadata beside them.
Everything is generated offline and is deterministic for a seed: the same seed gives the same files,
byte for byte, whatever the number of worker processes. The folders are described in `layout`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mww.synth.jobs import default_workers, run_jobs
from mww.synth.layout import METADATA_FILES, SUBFOLDERS, dataset_paths
from mww.synth.metadata import GENERATOR, changed_files, other_request, read_manifest, write_metadata
from mww.synth.plan import plan_dataset
from mww.synth.request import GenerationCounts, GenerationError, check_seed, clean_wake_word, resolve_counts
from mww.synth.voices import resolve_voices


class OutputExistsError(GenerationError):
    """The output folder already holds dataset files and overwriting was not asked for."""


@dataclass(frozen=True)
class GenerationSummary:
    """What generate_dataset wrote."""

    output_dir: Path
    wake_word: str
    size: str
    seed: int
    counts: dict[str, int]
    ambient_seconds: float
    speakers: list[str]
    held_out_speakers: list[str]
    hard_negative_phrases: list[str]
    paths: dict[str, Path]
    elapsed_s: float = field(compare=False)
    reused: bool = False  # the dataset already in the folder was current, nothing was written
    engines: tuple[str, ...] = ("espeak",)  # the speech engines that spoke (espeak, piper)
    replaced: str | None = None  # why a dataset the generator made earlier was generated again


def _existing_summary(output_dir: Path, manifest: dict, started: float) -> GenerationSummary:
    return GenerationSummary(
        output_dir=output_dir,
        wake_word=manifest["wake_word"],
        size=manifest["size"],
        seed=manifest["seed"],
        counts=dict(manifest["counts"]),
        ambient_seconds=float(manifest["ambient_seconds"]),
        speakers=sorted(manifest["speakers"]),
        held_out_speakers=list(manifest["held_out_speakers"]),
        hard_negative_phrases=list(manifest["hard_negative_phrases"]),
        paths=dataset_paths(output_dir),
        elapsed_s=time.perf_counter() - started,
        reused=True,
        engines=tuple(manifest.get("engines", ["espeak"])),
    )


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def _check_output(output_dir: Path, overwrite: bool, note: str | None = None) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise GenerationError(
            f"The output path {output_dir} is a file, not a folder: choose a folder for the dataset."
        )
    busy = [name for name in SUBFOLDERS if (output_dir / name).is_file() or _has_files(output_dir / name)]
    if busy and not overwrite:
        listed = ", ".join(f"{name}/" for name in busy)
        why = ""
        if note:
            why = f"It was made by {GENERATOR} but cannot be reused or replaced as it is: {note}. "
        raise OutputExistsError(
            f"The output folder {output_dir} already holds dataset files (in {listed}). {why}Nothing was "
            "changed or deleted: the generator never mixes a new dataset into existing files. Choose a "
            "new or empty folder, or overwrite (--force on the command line, overwrite=True in Python) "
            f"to delete {', '.join(f'{name}/' for name in SUBFOLDERS)} and the metadata files in that "
            "folder and generate them again."
        )


def _remove_dataset(output_dir: Path) -> None:
    """Delete the dataset subfolders and metadata files in `output_dir`; other files stay."""
    for name in SUBFOLDERS:
        target = output_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for name in METADATA_FILES:
        (output_dir / name).unlink(missing_ok=True)


def generate_dataset(
    output_dir: Path,
    wake_word: str = "hey computer",
    size: str = "small",
    seed: int = 0,
    progress: bool = True,
    *,
    counts: GenerationCounts | Mapping[str, float] | None = None,
    overwrite: bool = False,
    reuse: bool = False,
    workers: int | None = None,
    tts: str | Sequence[str] | None = None,
    piper_voices: Sequence[str | os.PathLike[str]] = (),
) -> GenerationSummary:
    """Synthesise a demo dataset into `output_dir` (layout in `mww.synth.layout`); deterministic per seed.

    `size` picks the counts ("small" or "medium"); `counts` overrides them (a GenerationCounts or a
    dict of some of its fields). An output folder whose dataset subfolders already hold files is
    refused (OutputExistsError) unless `overwrite`, which deletes those subfolders first. With
    `reuse`, a dataset this generator already made there for the same request is kept as it is
    (`reused` in the summary; see `metadata.stale_reason`), and one it made for another request or with an
    older version is replaced (`replaced` gives the reason); other files are still refused. `workers`
    processes synthesise in parallel (default: every available core). `tts` and `piper_voices` pick
    the speech engines and Piper voice files (`mww.synth.voices.resolve_voices`; espeak alone by
    default). Raises GenerationError for bad input (piper.PiperVoiceError for a file that is not a
    Piper voice), before anything is written, and tts.TTSUnavailableError when speech synthesis
    cannot run.
    """
    started = time.perf_counter()
    wake = clean_wake_word(wake_word)
    resolved = resolve_counts(size, counts)
    check_seed(seed)
    voices = resolve_voices(tts, piper_voices)
    output_dir = Path(output_dir).expanduser().resolve()
    replaced = note = None
    made = read_manifest(output_dir) if reuse else None
    if made is not None:
        other = other_request(made, wake, size, seed, resolved, voices)
        changed = changed_files(output_dir, made)
        if other is None and changed is None:
            return _existing_summary(output_dir, made, started)
        if changed is None:
            replaced = other  # exactly the files this generator wrote, only outdated: safe to replace
        else:
            note = f"{other}, and {changed}" if other else changed
    _check_output(output_dir, overwrite or replaced is not None, note)
    plan = plan_dataset(wake, resolved, seed, voices)  # loads the speech library before anything is deleted
    _remove_dataset(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run_jobs(plan.jobs, output_dir, default_workers() if workers is None else workers, progress)
    paths = write_metadata(output_dir, wake, size, seed, resolved, plan, voices)
    return GenerationSummary(
        output_dir=output_dir,
        wake_word=wake,
        size=size,
        seed=seed,
        counts=dict(plan.counts),
        ambient_seconds=plan.ambient_seconds,
        speakers=sorted(plan.speakers),
        held_out_speakers=list(plan.held_out),
        hard_negative_phrases=list(plan.hard_phrases),
        paths=paths,
        elapsed_s=time.perf_counter() - started,
        replaced=replaced,
        engines=voices.engines,
    )
