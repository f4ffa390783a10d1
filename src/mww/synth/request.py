"""What may be asked of the generator, and how a request is checked before anything is written: the wake
word, the size presets (SIZES) with their counts, and the seed. Bad input raises GenerationError."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from mww.errors import MwwError
from mww.synth.phrases import split_words

_WAKE_WORD = re.compile(r"[A-Za-z][A-Za-z' -]*")


class GenerationError(MwwError, ValueError):
    """Input that generate_dataset refuses, with a message meant for the user."""


@dataclass(frozen=True)
class GenerationCounts:
    """How much to generate: clip counts per folder, seconds of ambient audio, number of speakers."""

    positives: int
    negatives: int
    hard_negatives: int
    background: int
    rirs: int
    ambient_seconds: float
    speakers: int


# Ambient audio is split between the validation and the test split, file by file. Each half holds
# at least `mww.train.calibration.MIN_HOURS` (2 h), so that the cutoff calibrated on the validation
# split is one the data can support (one false activation in 2 h is 0.5 FA/h).
SIZES: dict[str, GenerationCounts] = {
    "small": GenerationCounts(4000, 4000, 1000, 20, 20, 4 * 3600.0, 400),
    "medium": GenerationCounts(8000, 10000, 2000, 50, 50, 8 * 3600.0, 800),
}


def clean_wake_word(wake_word: str) -> str:
    """The wake word in lower case with single spaces, if it is made of English letters."""
    text = " ".join(str(wake_word).split())
    if not text or not _WAKE_WORD.fullmatch(text) or not split_words(text):
        raise GenerationError(
            f"The wake word {wake_word!r} cannot be used: give one or more English words made of letters "
            '(spaces, hyphens and apostrophes allowed), for example "hey computer".'
        )
    return text.lower()


def resolve_counts(size: str, counts: GenerationCounts | Mapping[str, float] | None) -> GenerationCounts:
    """The counts of `size`, with those of `counts` in their place (all of them or some), checked."""
    if size not in SIZES:
        raise GenerationError(f"Unknown dataset size {size!r}: choose one of {', '.join(SIZES)}.")
    if counts is None:
        resolved = SIZES[size]
    elif isinstance(counts, GenerationCounts):
        resolved = counts
    else:
        known = {f.name for f in fields(GenerationCounts)}
        unknown = sorted(set(counts) - known)
        if unknown:
            raise GenerationError(f"Unknown count(s) {unknown}: the counts are {sorted(known)}.")
        resolved = replace(SIZES[size], **counts)
    checked = {}
    for f in fields(GenerationCounts):
        value = getattr(resolved, f.name)
        minimum = 2 if f.name == "speakers" else 1 if f.name == "positives" else 0
        whole = f.type != "int" or (isinstance(value, int | float) and float(value).is_integer())
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum or not whole:
            kind = "a whole number" if f.type == "int" else "a number"
            raise GenerationError(f"The count {f.name} must be {kind} of at least {minimum}, got {value!r}.")
        checked[f.name] = int(value) if f.type == "int" else float(value)
    return GenerationCounts(**checked)


def check_seed(seed: int) -> int:
    """The seed, if it is a whole number of at least 0."""
    if not isinstance(seed, int) or seed < 0:
        raise GenerationError(f"The seed must be a whole number of at least 0, got {seed!r}.")
    return seed
