"""The metadata beside the audio: generation.json (what was asked and what was written), README.txt and
demo_override.yaml (the trainer override); and reading generation.json back to tell whether a folder
already holds what this generator writes for a request now (`stale_reason`)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path

import yaml

from mww.atomic import atomic_write_json, atomic_write_text
from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth import tts
from mww.synth.layout import OVERRIDE_KEYS, SUBFOLDERS, dataset_paths
from mww.synth.plan import Plan
from mww.synth.request import GenerationCounts
from mww.synth.voices import ESPEAK_ONLY, VoiceRequest

# Bump whenever the same wake word, size and seed would give different files (a changed voice list,
# level, mix or text): `mww-generate --reuse` then regenerates a dataset an older version made.
GENERATOR_VERSION = 4
GENERATOR = "mww-generate"


def _title(wake_word: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in wake_word.split())


def write_metadata(
    output_dir: Path,
    wake_word: str,
    size: str,
    seed: int,
    counts: GenerationCounts,
    plan: Plan,
    voices: VoiceRequest = ESPEAK_ONLY,
) -> dict[str, Path]:
    """Write demo_override.yaml, generation.json and README.txt for `plan`; the dataset's paths."""
    paths = dataset_paths(output_dir)
    override = {
        "paths": {key: str(paths[key]) for key in OVERRIDE_KEYS.values()},
        "data": {"test_speakers": list(plan.held_out)},
        "export": {"wake_word": _title(wake_word)},
    }
    header = (
        f"# Written by mww-generate (wake word {wake_word!r}, size {size}, seed {seed}).\n"
        "# Use it with: mww-train --config fast_test --override <this file>\n"
    )
    override_path = paths["override"]
    atomic_write_text(override_path, header + yaml.safe_dump(override, sort_keys=False))
    manifest = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "tts_version": tts.package_version(),
        "wake_word": wake_word,
        "size": size,
        "seed": seed,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "requested": asdict(counts),
        "counts": plan.counts,
        "ambient_seconds": plan.ambient_seconds,
        "speakers": plan.speakers,
        "held_out_speakers": plan.held_out,
        "hard_negative_phrases": plan.hard_phrases,
        "tts": _engines_text(voices),
        **voices.record(),
    }
    atomic_write_json(paths["manifest"], manifest)
    atomic_write_text(paths["readme"], _readme(wake_word, size, seed, plan, override_path, voices))
    return paths


_ESPEAK = "espeak-ng (espeakng-loader), accents x voice variants"


def _engines_text(voices: VoiceRequest) -> str:
    piper = f"{len(voices.piper_voices)} Piper voice file(s) ({voices.record().get('piper_version')})"
    return " and ".join([*([_ESPEAK] if voices.espeak else []), *([piper] if voices.piper_voices else [])])


def _voices_lines(voices: VoiceRequest) -> list[str]:
    if not voices.piper_voices:
        return [
            "All audio is 16-bit mono WAV at the device sample rate, synthesised offline with espeak-ng",
            "voices (accent x voice variant = one speaker) and generated noise. It is meant for trying the",
        ]
    espeak = "espeak-ng voices (accent x voice variant = one speaker), " if voices.espeak else ""
    names = ", ".join(v.name for v in voices.piper_voices)
    text = (
        f"All audio is 16-bit mono WAV at the device sample rate, synthesised offline with {espeak}the "
        f"Piper voices {names} (voice x speaker id = one speaker) and generated noise. It is meant for "
        "trying the"
    )
    return textwrap.wrap(text, 96)


def _readme(
    wake_word: str, size: str, seed: int, plan: Plan, override: Path, voices: VoiceRequest = ESPEAK_ONLY
) -> str:
    c = plan.counts
    minutes = plan.ambient_seconds / 60
    return "\n".join(
        [
            f'Synthetic wake-word dataset for "{wake_word}" made by mww-generate (size {size}, seed {seed}).',
            "",
            *_voices_lines(voices),
            "pipeline end to end; a model for real use needs recordings of real people.",
            "",
            f"positive/<speaker>/       {c['positive']} wake-word clips from {len(plan.speakers)} speakers",
            f"negative/<speaker>/       {c['negative']} sentences and words without the wake word",
            f"hard_negative/<speaker>/  {c['hard_negative']} clips of {len(plan.hard_phrases)} close phrases",
            f"background/               {c['background']} noise clips (coloured noise, hum, babble, mixes)",
            f"rirs/                     {c['rirs']} synthetic room impulse responses",
            f"ambient/                  {minutes:.1f} minutes of speech over noise in {c['ambient']} file(s)",
            "",
            f"Held-out speakers (test split only): {', '.join(plan.held_out)}",
            "",
            f"Train with: mww-train --config fast_test --override {override}",
            "generation.json lists everything that was generated.",
            "",
        ]
    )


_MANIFEST_KEYS = (
    "wake_word",
    "size",
    "seed",
    "requested",
    "counts",
    "ambient_seconds",
    "speakers",
    "held_out_speakers",
    "hard_negative_phrases",
)


def read_manifest(output_dir: Path) -> dict | None:
    """The generation.json of a dataset this generator wrote into `output_dir`, or None."""
    try:
        manifest = json.loads(dataset_paths(output_dir)["manifest"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
        return None
    return manifest if all(key in manifest for key in _MANIFEST_KEYS) else None


def stale_reason(
    output_dir: Path,
    wake_word: str,
    size: str,
    seed: int,
    counts: GenerationCounts,
    voices: VoiceRequest = ESPEAK_ONLY,
) -> str | None:
    """Why `output_dir` does not hold what this generator writes for this request now; None if it does.

    Current means: written by this generator version with the installed speech library, for the same
    wake word, size, seed and counts, with every file it lists still in place.
    """
    manifest = read_manifest(output_dir)
    if manifest is None:
        return f"{output_dir} holds no generation.json written by {GENERATOR}"
    return other_request(manifest, wake_word, size, seed, counts, voices) or changed_files(
        output_dir, manifest
    )


def other_request(
    manifest: dict,
    wake_word: str,
    size: str,
    seed: int,
    counts: GenerationCounts,
    voices: VoiceRequest = ESPEAK_ONLY,
) -> str | None:
    """How the generation.json's version, speech libraries, voices or request differ from this one, or
    None."""
    made_by = manifest.get("generator_version")
    if made_by != GENERATOR_VERSION:
        earlier = f"version {made_by}" if made_by else "an earlier version (before versions were recorded)"
        return f"it was made by {GENERATOR} {earlier}; this is version {GENERATOR_VERSION}"
    if manifest.get("tts_version") != tts.package_version():
        return (
            f"it was made with espeakng-loader {manifest.get('tts_version') or '(unknown)'}; "
            f"{tts.package_version() or 'none'} is installed now"
        )
    voices_changed = _other_voices(manifest, voices)
    if voices_changed:
        return voices_changed
    made_for = (manifest.get("wake_word"), manifest.get("size"), manifest.get("seed"))
    if made_for != (wake_word, size, seed) or manifest.get("requested") != asdict(counts):
        return (
            f"it was made for wake word {made_for[0]!r}, size {made_for[1]}, seed {made_for[2]} "
            f"(asked now: {wake_word!r}, size {size}, seed {seed}"
            + (")" if made_for != (wake_word, size, seed) else ", with other counts)")
        )
    return None


def _other_voices(manifest: dict, voices: VoiceRequest) -> str | None:
    """How the engines, Piper version or Piper voice files of generation.json differ from `voices`."""
    recorded = {key: manifest.get(key) for key in ("engines", "piper_version", "piper_voices")}
    wanted = {key: voices.record().get(key) for key in recorded}
    if recorded["engines"] != wanted["engines"]:
        made, asked = (" and ".join(x or ["espeak"]) for x in (recorded["engines"], wanted["engines"]))
        return f"it was made with {made} (asked now: {asked})"
    if recorded["piper_version"] != wanted["piper_version"]:
        now = wanted["piper_version"] or "none"
        return f"it was made with {recorded['piper_version']}; {now} is installed now"
    if recorded["piper_voices"] != wanted["piper_voices"]:
        return "it was made with other Piper voice files (or the files changed since)"
    return None


def changed_files(output_dir: Path, manifest: dict) -> str | None:
    """How the folder differs from the files its generation.json lists (added, removed), or None."""
    listed = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    for name in SUBFOLDERS:
        found = sum(1 for _ in (output_dir / name).rglob("*.wav")) if (output_dir / name).is_dir() else 0
        if found != listed.get(name):
            return f"{name}/ holds {found} WAV files where generation.json lists {listed.get(name)}"
    override = dataset_paths(output_dir)["override"]
    if not override.is_file():
        return f"{override.name} is missing"
    return None
