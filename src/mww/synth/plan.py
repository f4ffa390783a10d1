"""What a dataset is made of, decided from the seed before any audio is made: the speakers and which of
them are held out, the texts they say, and one job per output file.

A speaker is an espeak accent+variant ("en-us+f3", folder "en-us_f3") or a Piper voice's speaker
(folder "piper_<voice>" or "piper_<voice>_<speaker>"). About 20 % of the speakers of each engine are
held out, an espeak variant at a time (a held-out timbre is never heard in training, in any accent)
and a Piper speaker at a time, and listed under `data.test_speakers`, so the trainer keeps them for
the test split. With both engines, each says about half of the clips and of the ambient speech.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mww.synth import tts
from mww.synth.jobs import AmbientJob, BackgroundJob, Job, RirJob, SpeechJob
from mww.synth.layout import SUBFOLDERS
from mww.synth.phrases import audibly_distinct, confusable_phrases, wake_variants
from mww.synth.request import GenerationCounts, GenerationError
from mww.synth.sentences import negative_texts
from mww.synth.sounds import BACKGROUND_KINDS
from mww.synth.voices import ESPEAK_ONLY, VoiceRequest

HELD_OUT_FRACTION = 0.2
POSITIVE_SECONDS = (1.0, 2.5)
NEGATIVE_SECONDS = (1.0, 3.0)
RT60_SECONDS = (0.2, 1.0)
AMBIENT_FILE_SECONDS = 300.0
HARD_NEGATIVE_PHRASES = 48
TEXT_POOL_SIZE = 400
AMBIENT_CONFUSABLE_EVERY = 10  # one ambient utterance in this many is a confusable phrase


def speaker_id(voice: str) -> str:
    """The folder name of a voice: "en-us+f3" -> "en-us_f3"."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", voice).strip("_")


def _variant(voice: str) -> str:
    return voice.partition("+")[2]


def _choose_speakers(
    rng: np.random.Generator, voices: Sequence[str], count: int, group: Callable[[str], str] = _variant
) -> list[str]:
    """`count` voices, distinct groups first (espeak: variants, each with a random accent), in random
    order."""
    if count > len(voices):
        raise GenerationError(f"At most {len(voices)} speakers are available, {count} were asked for.")
    by_variant: dict[str, list[str]] = {}
    for voice in voices:
        by_variant.setdefault(group(voice), []).append(voice)
    variants = [sorted(by_variant)[i] for i in rng.permutation(len(by_variant))]
    accents = {v: [by_variant[v][i] for i in rng.permutation(len(by_variant[v]))] for v in variants}
    chosen: list[str] = []
    for round_index in range(max(len(a) for a in accents.values())):
        chosen += [accents[v][round_index] for v in variants if round_index < len(accents[v])]
    return chosen[:count]


def held_out_voices(
    chosen: Sequence[str], fraction: float, group: Callable[[str], str] = _variant
) -> list[str]:
    """The voices kept out of training: every accent of the variants picked last, about `fraction`.

    A variant ("+f3") sets the voice's timbre and an accent only its pronunciation, so a held-out
    variant is held out in every accent: the test split then measures voices the model never heard.
    """
    variant_of = {voice: group(voice) for voice in chosen}
    voices_of = Counter(variant_of.values())  # insertion order: variants in the order first chosen
    wanted = max(1, round(len(chosen) * fraction))
    held: set[str] = set()
    for variant in reversed(list(voices_of)[1:]):  # the first variant always stays for training
        if sum(voices_of[h] for h in held) >= wanted:
            break
        held.add(variant)
    return [v for v in chosen if variant_of[v] in held]


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _in_turn(i: int, groups: list[list[str]]) -> str:
    """The folder of clip `i`: the engines in turn, and each engine's speakers in turn."""
    group = groups[i % len(groups)]
    return group[(i // len(groups)) % len(group)]


def _blocks(count: int, groups: list[list[str]]) -> list[tuple[str, int]]:
    """(folder, clips) in folder order: `count` shared between the engines, then their speakers."""
    parts = _spread(count, len(groups))
    return [
        (f, n)
        for g, part in zip(groups, parts, strict=True)
        for f, n in zip(g, _spread(part, len(g)), strict=True)
    ]


@dataclass
class Plan:
    """Every file to write (`jobs`) and what the metadata says about them."""

    jobs: list[Job]
    counts: dict[str, int]
    ambient_seconds: float
    speakers: dict[str, str]  # folder -> voice
    held_out: list[str]
    hard_phrases: list[str]


def _ambient_jobs(
    seconds: float, voices: tuple[str, ...], pool: tuple[str, ...], hard: list[str], seed: int
) -> list[Job]:
    n_files = math.ceil(seconds / AMBIENT_FILE_SECONDS) if seconds > 0 else 0
    # About one utterance in AMBIENT_CONFUSABLE_EVERY is a confusable phrase (never the wake word),
    # as in real rooms: false activations per hour measured on it then mean something.
    repeats = max(1, len(pool) // max(1, (AMBIENT_CONFUSABLE_EVERY - 1) * len(hard)))
    ambient_pool = pool + tuple(hard) * repeats
    return [
        AmbientJob(f"ambient/ambient_{i:03d}.wav", seconds / n_files, voices, ambient_pool, (seed, 1, i))
        for i in range(n_files)
    ]


def _background_jobs(count: int, voices: tuple[str, ...], pool: tuple[str, ...], seed: int) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        kind = BACKGROUND_KINDS[i % len(BACKGROUND_KINDS)]
        extra = (voices, pool) if kind in ("babble", "mixture") else ((), ())
        jobs.append(BackgroundJob(f"background/{i:03d}_{kind}.wav", kind, *extra, (seed, 2, i)))
    return jobs


def _positive_jobs(
    rng: np.random.Generator,
    wake_word: str,
    count: int,
    speakers: dict[str, str],
    groups: list[list[str]],
    seed: int,
) -> list[Job]:
    variants = wake_variants(wake_word)
    jobs: list[Job] = []
    index = 0
    for folder, number in _blocks(count, groups):
        for _ in range(number):
            text = variants[int(rng.integers(len(variants)))]
            path = f"positive/{folder}/pos_{index:05d}.wav"
            jobs.append(SpeechJob(path, text, speakers[folder], POSITIVE_SECONDS, False, (seed, 3, index)))
            index += 1
    return jobs


def _negative_jobs(
    texts: list[str], count: int, speakers: dict[str, str], groups: list[list[str]], seed: int
) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        folder = _in_turn(i, groups)
        path = f"negative/{folder}/neg_{i:05d}.wav"
        jobs.append(SpeechJob(path, texts[i], speakers[folder], NEGATIVE_SECONDS, True, (seed, 4, i)))
    return jobs


def _hard_negative_jobs(
    rng: np.random.Generator,
    hard: list[str],
    count: int,
    speakers: dict[str, str],
    groups: list[list[str]],
    seed: int,
) -> tuple[list[Job], list[str]]:
    """The jobs, and the phrases they say (in the order of `hard`): each phrase once before any twice."""
    jobs: list[Job] = []
    queue: list[str] = []
    used: set[str] = set()
    for i in range(count if hard else 0):
        if not queue:
            queue = [hard[j] for j in rng.permutation(len(hard))]
        folder, text = _in_turn(i, groups), queue.pop()
        used.add(text)
        path = f"hard_negative/{folder}/hard_{i:05d}.wav"
        jobs.append(SpeechJob(path, text, speakers[folder], POSITIVE_SECONDS, False, (seed, 5, i)))
    return jobs, [p for p in hard if p in used]


def _rir_jobs(rng: np.random.Generator, count: int, seed: int) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        rt60 = RT60_SECONDS[0] + (RT60_SECONDS[1] - RT60_SECONDS[0]) * (i + rng.random()) / count
        jobs.append(RirJob(f"rirs/rir_{i:03d}_rt60_{round(rt60 * 1000)}ms.wav", rt60, (seed, 6, i)))
    return jobs


def _espeak_speakers(
    rng: np.random.Generator, voices: Sequence[str], count: int
) -> tuple[dict[str, str], list[str]]:
    """(folder -> voice of the chosen espeak voices, folders held out), as mww-generate always chose them."""
    chosen = _choose_speakers(rng, voices, count)
    held = [speaker_id(v) for v in held_out_voices(chosen, HELD_OUT_FRACTION)]
    return {speaker_id(v): v for v in chosen}, held


def _piper_speakers(
    rng: np.random.Generator, speakers: dict[str, str], count: int
) -> tuple[list[str], list[str]]:
    """(folders of `count` Piper speakers, different voice files first; the ones held out, one speaker at
    a time). A file's speakers share its path, which groups them."""
    folder_of = {voice: folder for folder, voice in speakers.items()}
    chosen = _choose_speakers(rng, list(speakers.values()), count, group=lambda v: v.rpartition("#")[0])
    held = held_out_voices(chosen, HELD_OUT_FRACTION, group=lambda v: v)
    return [folder_of[v] for v in chosen], [folder_of[v] for v in held]


def _engine_counts(speakers: int, piper_available: int, both: bool) -> tuple[int, int]:
    """(espeak speakers, Piper speakers) for `speakers` in all: Piper gets half when both speak, and at
    most the speakers its voices have."""
    if not both:
        if piper_available < 2:
            raise GenerationError(
                f"Piper alone needs at least 2 speakers (one is held out for the test split), but the voices "
                f"given have {piper_available}. Give another --piper-voice (or a multi-speaker voice), or "
                "mix with espeak (--tts espeak,piper)."
            )
        return 0, min(speakers, piper_available)
    wanted = min(piper_available, max(1, speakers // 2))
    return speakers - wanted, wanted


def _ambient_voices(espeak: tuple[str, ...], piper: tuple[str, ...]) -> tuple[str, ...]:
    """The voices ambient speech and babble draw from: with both engines, the Piper speakers repeated so
    that each engine is drawn about half of the time."""
    if not espeak or not piper:
        return espeak or piper
    return espeak + piper * max(1, round(len(espeak) / len(piper)))


def _speakers(
    rng: np.random.Generator, counts: GenerationCounts, voices: VoiceRequest
) -> tuple[dict[str, str], list[list[str]], list[str], tuple[str, ...]]:
    """(folder -> voice, the folders of each engine, the folders held out, the ambient voices)."""
    espeak = tuple(tts.list_english_voices()) if voices.espeak else ()
    piper = voices.piper_speakers()
    if not piper:
        speakers, held = _espeak_speakers(rng, espeak, counts.speakers)
        return speakers, [list(speakers)], held, espeak
    n_espeak, n_piper = _engine_counts(counts.speakers, len(piper), voices.espeak)
    speakers, held = _espeak_speakers(rng, espeak, n_espeak) if n_espeak else ({}, [])
    folders, held_piper = _piper_speakers(rng, piper, n_piper)
    groups = [list(speakers)] if speakers else []
    speakers.update((f, piper[f]) for f in folders)
    return speakers, [*groups, folders], held + held_piper, _ambient_voices(espeak, tuple(piper.values()))


def plan_dataset(
    wake_word: str, counts: GenerationCounts, seed: int, voices: VoiceRequest = ESPEAK_ONLY
) -> Plan:
    """The whole dataset for this request; every random choice here comes from `seed`, in a fixed order.

    `voices` picks the engines (espeak alone by default, which gives what mww-generate always gave)."""
    rng = np.random.default_rng([seed, 0])
    speakers, groups, held_out, ambient_voices = _speakers(rng, counts, voices)
    held_out = sorted(held_out)
    texts = negative_texts(rng, max(counts.negatives, TEXT_POOL_SIZE), wake_word)
    pool = tuple(texts[:TEXT_POOL_SIZE])
    hard = audibly_distinct(confusable_phrases(wake_word, HARD_NEGATIVE_PHRASES * 2), wake_word)
    hard = hard[:HARD_NEGATIVE_PHRASES]

    ambient = _ambient_jobs(counts.ambient_seconds, ambient_voices, pool, hard, seed)
    jobs = ambient + _background_jobs(counts.background, ambient_voices, pool, seed)
    jobs += _positive_jobs(rng, wake_word, counts.positives, speakers, groups, seed)
    jobs += _negative_jobs(texts, counts.negatives, speakers, groups, seed)
    hard_jobs, used_phrases = _hard_negative_jobs(rng, hard, counts.hard_negatives, speakers, groups, seed)
    jobs += hard_jobs + _rir_jobs(rng, counts.rirs, seed)

    tally = {name: sum(1 for job in jobs if job.path.startswith(f"{name}/")) for name in SUBFOLDERS}
    return Plan(jobs, tally, counts.ambient_seconds if ambient else 0.0, speakers, held_out, used_phrases)
