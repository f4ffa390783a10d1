"""The Dataset page: what the folders hold, clips to hear, uploads and recordings, the generator and the
ingestion report.

Counts and clip lists come from `mww.data.ingest` (the files ingestion will look at, the speaker each
positive belongs to). An upload or a recording is stored the way the device hears audio, 16 kHz mono
16-bit WAV, converted with `mww.device.audio` (the conversion `mww-detect --convert` uses); a file
that is not audio is refused with the reader's own message. "Check the dataset" runs
`mww.data.prepare.prepare_data`, the stage `mww-prepare` runs, and lists every skipped file with its
reason; "Generate" runs `mww.synth.dataset.generate_dataset`, the engine of `mww-generate`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mww.config.schema import MwwConfig
from mww.data.ingest import (
    KINDS,
    REPORT_NAME,
    SPLIT_MANIFEST_NAME,
    discover,
    first_folder,
    kind_dirs,
    load_split_manifest,
)
from mww.device.audio import AUDIO_EXTENSIONS, AudioError, write_wav
from mww.device.runtime import read_device_pcm16
from mww.studio.project import Project, StudioError, merge_into_config

CLIPS_LISTED = 100  # clips per page of the clip list
NO_SPEAKER = "(no speaker folder)"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]*")
UPLOADS = "uploads"  # under .studio/: uploaded files before they are converted


def dataset_counts(config: MwwConfig) -> dict[str, Any]:
    """Files per folder (as ingestion finds them) and positives per speaker."""
    dirs = kind_dirs(config.paths)
    folders = [
        {"kind": kind, "folder": str(dirs[kind]), "files": len(discover(dirs[kind]))} for kind in KINDS
    ]
    positives = discover(dirs["positive"])
    speaker_of = {p: first_folder(p, dirs["positive"]) or NO_SPEAKER for p in positives}
    speakers = Counter(speaker_of.values())
    # The split each speaker joined at the last ingestion (splits.json), where it has run.
    manifest = load_split_manifest(Path(config.paths.processed_dir) / SPLIT_MANIFEST_NAME, config.data)
    split_of = {speaker_of[p]: manifest[str(p)] for p in positives if str(p) in manifest}
    return {
        "folders": folders,
        "speakers": [
            {"speaker": s, "files": n, "split": split_of.get(s)} for s, n in sorted(speakers.items())
        ],
        "test_speakers": list(config.data.test_speakers),
        "validation_speakers": list(config.data.validation_speakers),
    }


def _kind_dir(config: MwwConfig, kind: str) -> Path:
    dirs = kind_dirs(config.paths)
    if kind not in dirs:
        raise StudioError(f"Unknown dataset folder {kind!r}: use one of {', '.join(KINDS)}.")
    return dirs[kind]


def list_clips(config: MwwConfig, kind: str, speaker: str | None = None, offset: int = 0) -> dict[str, Any]:
    """One page of the clips of a folder (of one positive speaker when `speaker` is given)."""
    folder = _kind_dir(config, kind)
    files = discover(folder)
    if speaker:
        files = [p for p in files if (first_folder(p, folder) or NO_SPEAKER) == speaker]
    page = files[max(0, offset) : max(0, offset) + CLIPS_LISTED]
    return {
        "kind": kind,
        "speaker": speaker,
        "total": len(files),
        "offset": offset,
        "clips": [{"path": str(p), "name": str(p.relative_to(folder))} for p in page],
    }


def checked_name(text: str, what: str) -> str:
    """A speaker or file name safe to use as one path component; StudioError otherwise."""
    name = str(text).strip()
    if not _NAME.fullmatch(name) or name in (".", "..") or len(name) > 100:
        raise StudioError(
            f"The {what} {text!r} cannot be used as a file name: use letters, digits, spaces, '_', '-', "
            "'+' and '.', starting with a letter or digit (at most 100 characters)."
        )
    return name


def _free_name(folder: Path, stem: str) -> Path:
    """`folder/stem.wav`, or `stem_2.wav`, `stem_3.wav`... when taken."""
    target, n = folder / f"{stem}.wav", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}_{n}.wav"
    return target


def store_as_device_audio(project: Project, name: str, data: bytes, folder: Path, stem: str) -> Path:
    """Write uploaded bytes under their own name in `.studio/uploads/`, convert them to 16 kHz mono
    16-bit WAV as `folder/<stem>.wav` (a free name); AudioError naming the file when it is not audio."""
    if not data:
        raise StudioError(f"The uploaded file {name} is empty: pick an audio file (WAV, FLAC, OGG or MP3).")
    staging = project.state_dir / UPLOADS
    staging.mkdir(exist_ok=True)
    folder_in_transit = Path(tempfile.mkdtemp(dir=staging))
    raw = folder_in_transit / name
    try:
        raw.write_bytes(data)
        samples = read_device_pcm16(raw, convert=True)
    except AudioError as exc:  # the reader's own message, naming the file as it was uploaded
        raise AudioError(exc.reason, exc.detail.replace(str(raw), name)) from exc
    finally:
        shutil.rmtree(folder_in_transit, ignore_errors=True)
    if samples.size == 0:
        raise StudioError(f"The uploaded file {name} holds no audio samples: record or pick another file.")
    return write_wav(_free_name(folder, stem), samples)


def save_upload(project: Project, config: MwwConfig, kind: str, speaker: str, name: str, data: bytes) -> Path:
    """An uploaded audio file, stored as device audio in the folder of `kind` (under `speaker` for
    positives, where the speaker is required: it decides the split)."""
    folder = _kind_dir(config, kind)
    file_name = checked_name(Path(str(name)).name, "file name")
    if Path(file_name).suffix.lower() not in AUDIO_EXTENSIONS:
        raise StudioError(
            f"The file {file_name} is not an audio file the dataset takes: upload "
            f"{', '.join(e.lstrip('.').upper() for e in AUDIO_EXTENSIONS)} files."
        )
    if speaker:
        folder = folder / checked_name(speaker, "speaker name")
    elif kind == "positive":
        raise StudioError(
            "Give the speaker's name before uploading wake word recordings: positives go into "
            "positive/<speaker>/, and the speaker decides which split (train, validation, test) they join."
        )
    return store_as_device_audio(project, file_name, data, folder, Path(file_name).stem)


def save_recording(project: Project, config: MwwConfig, speaker: str, data: bytes) -> Path:
    """One take recorded in the browser (a WAV at the browser's rate), stored as
    `positive/<speaker>/<speaker>_NNN.wav` in device audio."""
    who = checked_name(speaker, "speaker name")
    folder = _kind_dir(config, "positive") / who
    taken = len(list(folder.glob(f"{who}_*.wav"))) if folder.is_dir() else 0
    return store_as_device_audio(project, f"{who}_take.wav", data, folder, f"{who}_{taken + 1:03d}")


def audio_file(config: MwwConfig, project: Project, path: str) -> Path:
    """A file the pages may play: an audio file inside a dataset folder or the project; StudioError else."""
    target = Path(path).resolve()
    roots = [project.root, *(d.resolve() for d in kind_dirs(config.paths).values())]
    inside = any(target.is_relative_to(root) for root in roots)
    if not inside or target.suffix.lower() not in AUDIO_EXTENSIONS or not target.is_file():
        raise StudioError(
            f"{path} is not an audio file of this project's dataset, so the studio does not serve it."
        )
    return target


# --------------------------------------------------------------------------- the stages behind the page


def check_dataset(config: MwwConfig) -> dict[str, Any]:
    """What `mww-prepare` does and prints: ingest, split, cache features; plus every skipped file."""
    from mww.data.ingest import summary_lines
    from mww.data.prepare import prepare_data

    prepared = prepare_data(config, progress=False)
    f = prepared.features
    lines = [
        *summary_lines(prepared.ingest),
        f"features: {f.computed} computed, {f.reused} reused from cache, {len(f.failed)} failed",
        f"split manifest: {prepared.ingest.manifest_path}",
    ]
    return {"lines": lines, **ingest_report(config)}


def ingest_report(config: MwwConfig) -> dict[str, Any]:
    """The skipped files of the last ingestion (`<processed_dir>/ingest_report.txt`), if it ran."""
    path = Path(config.paths.processed_dir) / REPORT_NAME
    if not path.is_file():
        return {"report": None, "skipped": []}
    skipped = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        kind, reason, file, detail = ([*line.split("\t", 3), "", "", ""])[:4]
        skipped.append({"kind": kind, "reason": reason, "path": file, "detail": detail})
    return {"report": str(path), "skipped": skipped}


def generate(
    project: Project, options: Mapping[str, Any], counts: Mapping[str, float] | None = None
) -> list[str]:
    """`mww-generate --output <project>/dataset` with the page's options (wake_word, size, seed, force,
    reuse, tts: the engines as --tts takes them, piper_voices: one PATH.onnx a line); then its override
    (the dataset's folders, held-out speakers and wake word) is merged into `project.yaml`. Returns what
    it did. `counts` replaces some of the size's counts, as `generate_dataset` takes them."""
    from mww.synth.dataset import generate_dataset
    from mww.synth.layout import SUBFOLDERS

    seed = options.get("seed", 0)
    try:
        number = int(str(seed).strip())
    except ValueError:
        raise StudioError(f"The seed must be a whole number of at least 0, got {seed!r}") from None
    engines = str(options.get("tts") or "").strip()
    voices = [line.strip() for line in str(options.get("piper_voices") or "").splitlines() if line.strip()]
    summary = generate_dataset(
        project.root / "dataset",
        str(options.get("wake_word", "hey computer")),
        str(options.get("size", "small")),
        number,
        progress=False,
        counts=counts,
        overwrite=bool(options.get("force")),
        reuse=bool(options.get("reuse")),
        tts=[engines] if engines else None,
        piper_voices=voices,
    )
    override = yaml.safe_load(Path(summary.paths["override"]).read_text(encoding="utf-8"))
    merge_into_config(project, override)
    made = "Reusing the" if summary.reused else "Generated a"
    lines = [f'{made} dataset for "{summary.wake_word}" in {summary.output_dir} (size {summary.size}):']
    lines += [f"  {name + '/':<16}{summary.counts[name]:>6} files" for name in SUBFOLDERS]
    lines.append(
        f"  {len(summary.speakers)} speakers; held out for testing: {', '.join(summary.held_out_speakers)}"
    )
    lines.append(f"merged {summary.paths['override']} into {project.config_path}")
    return lines
