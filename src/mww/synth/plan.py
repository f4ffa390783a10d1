"""What a dataset is made of, decided from the seed before any audio is made: the speakers and which of
them are held out, the texts they say, and one job per output file.

A speaker is an espeak accent+variant ("en-us+f3", folder "en-us_f3"). About 20 % of the speakers
are held out, a whole variant at a time (a held-out timbre is never heard in training, in any
accent), and listed under `data.test_speakers`, so the trainer keeps them for the test split.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mww.synth import tts
from mww.synth.jobs import AmbientJob, BackgroundJob, Job, RirJob, SpeechJob
from mww.synth.layout import SUBFOLDERS
from mww.synth.phrases import audibly_distinct, confusable_phrases, wake_variants
from mww.synth.request import GenerationCounts, GenerationError
from mww.synth.sentences import negative_texts
from mww.synth.sounds import BACKGROUND_KINDS

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


def _choose_speakers(rng: np.random.Generator, voices: Sequence[str], count: int) -> list[str]:
    """`count` voices, distinct variants first (each with a random accent), in random order."""
    if count > len(voices):
        raise GenerationError(f"At most {len(voices)} speakers are available, {count} were asked for.")
    by_variant: dict[str, list[str]] = {}
    for voice in voices:
        by_variant.setdefault(voice.partition("+")[2], []).append(voice)
    variants = [sorted(by_variant)[i] for i in rng.permutation(len(by_variant))]
    accents = {v: [by_variant[v][i] for i in rng.permutation(len(by_variant[v]))] for v in variants}
    chosen: list[str] = []
    for round_index in range(max(len(a) for a in accents.values())):
        chosen += [accents[v][round_index] for v in variants if round_index < len(accents[v])]
    return chosen[:count]


def held_out_voices(chosen: Sequence[str], fraction: float) -> list[str]:
    """The voices kept out of training: every accent of the variants picked last, about `fraction`.

    A variant ("+f3") sets the voice's timbre and an accent only its pronunciation, so a held-out
    variant is held out in every accent: the test split then measures voices the model never heard.
    """
    variant_of = {voice: voice.partition("+")[2] for voice in chosen}
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
    folders: list[str],
    seed: int,
) -> list[Job]:
    variants = wake_variants(wake_word)
    jobs: list[Job] = []
    index = 0
    for folder, number in zip(folders, _spread(count, len(folders)), strict=True):
        for _ in range(number):
            text = variants[int(rng.integers(len(variants)))]
            path = f"positive/{folder}/pos_{index:05d}.wav"
            jobs.append(SpeechJob(path, text, speakers[folder], POSITIVE_SECONDS, False, (seed, 3, index)))
            index += 1
    return jobs


def _negative_jobs(
    texts: list[str], count: int, speakers: dict[str, str], folders: list[str], seed: int
) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        folder = folders[i % len(folders)]
        path = f"negative/{folder}/neg_{i:05d}.wav"
        jobs.append(SpeechJob(path, texts[i], speakers[folder], NEGATIVE_SECONDS, True, (seed, 4, i)))
    return jobs


def _hard_negative_jobs(
    rng: np.random.Generator,
    hard: list[str],
    count: int,
    speakers: dict[str, str],
    folders: list[str],
    seed: int,
) -> tuple[list[Job], list[str]]:
    """The jobs, and the phrases they say (in the order of `hard`): each phrase once before any twice."""
    jobs: list[Job] = []
    queue: list[str] = []
    used: set[str] = set()
    for i in range(count if hard else 0):
        if not queue:
            queue = [hard[j] for j in rng.permutation(len(hard))]
        folder, text = folders[i % len(folders)], queue.pop()
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


def plan_dataset(wake_word: str, counts: GenerationCounts, seed: int) -> Plan:
    """The whole dataset for this request; every random choice here comes from `seed`, in a fixed order."""
    voices = tuple(tts.list_english_voices())
    rng = np.random.default_rng([seed, 0])
    chosen = _choose_speakers(rng, voices, counts.speakers)
    folders = [speaker_id(v) for v in chosen]
    speakers = dict(zip(folders, chosen, strict=True))
    held_out = sorted(speaker_id(v) for v in held_out_voices(chosen, HELD_OUT_FRACTION))
    texts = negative_texts(rng, max(counts.negatives, TEXT_POOL_SIZE), wake_word)
    pool = tuple(texts[:TEXT_POOL_SIZE])
    hard = audibly_distinct(confusable_phrases(wake_word, HARD_NEGATIVE_PHRASES * 2), wake_word)
    hard = hard[:HARD_NEGATIVE_PHRASES]

    ambient = _ambient_jobs(counts.ambient_seconds, voices, pool, hard, seed)
    jobs = ambient + _background_jobs(counts.background, voices, pool, seed)
    jobs += _positive_jobs(rng, wake_word, counts.positives, speakers, folders, seed)
    jobs += _negative_jobs(texts, counts.negatives, speakers, folders, seed)
    hard_jobs, used_phrases = _hard_negative_jobs(rng, hard, counts.hard_negatives, speakers, folders, seed)
    jobs += hard_jobs + _rir_jobs(rng, counts.rirs, seed)

    tally = {name: sum(1 for job in jobs if job.path.startswith(f"{name}/")) for name in SUBFOLDERS}
    return Plan(jobs, tally, counts.ambient_seconds if ambient else 0.0, speakers, held_out, used_phrases)
