"""A synthetic wake-word dataset for trying the pipeline: espeak voices, noise, rooms, ambient speech.

Everything is generated offline and is deterministic for a seed: the same seed gives the same files,
byte for byte, whatever the number of worker processes. Layout under the output folder:

    positive/<speaker>/*.wav        the wake word, several prosody variants per speaker
    negative/<speaker>/*.wav        sentences and words that are not the wake word
    hard_negative/<speaker>/*.wav   phonetically close phrases (see `confusable_phrases`)
    background/*.wav                ten-second clips: coloured noise, mains hum, babble, mixtures
    rirs/*.wav                      synthetic room impulse responses (RT60 0.2-1.0 s)
    ambient/ambient_NNN.wav         long stretches of speech over noise, now and then a confusable
                                    phrase, never the wake phrase
    README.txt, generation.json     what was generated
    demo_override.yaml              trainer override: absolute dataset paths, held-out speakers

A speaker is an espeak accent+variant ("en-us+f3", folder "en-us_f3"). About 20 % of the speakers
are held out, a whole variant at a time (a held-out timbre is never heard in training, in any
accent), and listed under `data.test_speakers`, so the trainer keeps them for the test split.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml
from scipy.signal import lfilter
from tqdm import tqdm

from mww.atomic import atomic_write_json, atomic_write_text
from mww.device.audio import write_wav
from mww.device.constants import SAMPLE_RATE_HZ
from mww.errors import MwwError
from mww.synth import tts

SUBFOLDERS = ("positive", "negative", "hard_negative", "background", "rirs", "ambient")
METADATA_FILES = ("README.txt", "generation.json", "demo_override.yaml")
OVERRIDE_KEYS = {
    "positive": "positive_dir",
    "negative": "negative_dir",
    "hard_negative": "hard_negative_dir",
    "background": "background_dir",
    "rirs": "rir_dir",
    "ambient": "ambient_dir",
}

# Bump whenever the same wake word, size and seed would give different files (a changed voice list,
# level, mix or text): `mww-generate --reuse` then regenerates a dataset an older version made.
GENERATOR_VERSION = 3
GENERATOR = "mww-generate"
HELD_OUT_FRACTION = 0.2
RATE_WPM = (130, 220)
PITCH = (25, 75)
PITCH_RANGE = (20, 80)
PEAK_DBFS = (-12.0, -1.0)
POSITIVE_SECONDS = (1.0, 2.5)
NEGATIVE_SECONDS = (1.0, 3.0)
BACKGROUND_CLIP_MS = 10_000
BACKGROUND_RMS_DBFS = (-35.0, -15.0)
BACKGROUND_KINDS = ("white", "pink", "brown", "hum", "babble", "mixture")
BABBLE_TALKERS = (4, 8)
RT60_SECONDS = (0.2, 1.0)
AMBIENT_FILE_SECONDS = 300.0
AMBIENT_GAP_SECONDS = (0.5, 5.0)
AMBIENT_SNR_DB = (5.0, 25.0)
AMBIENT_NOISE_RMS_DBFS = (-55.0, -42.0)
HARD_NEGATIVE_PHRASES = 48
TEXT_POOL_SIZE = 400
AMBIENT_CONFUSABLE_EVERY = 10  # one ambient utterance in this many is a confusable phrase
PEAK_LIMIT = 0.95


class GenerationError(MwwError, ValueError):
    """Input that generate_dataset refuses, with a message meant for the user."""


class OutputExistsError(GenerationError):
    """The output folder already holds dataset files and overwriting was not asked for."""


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


SIZES: dict[str, GenerationCounts] = {
    "small": GenerationCounts(4000, 4000, 1000, 20, 20, 3600.0, 400),
    "medium": GenerationCounts(8000, 10000, 2000, 50, 50, 7200.0, 800),
}


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
    replaced: str | None = None  # why a dataset the generator made earlier was generated again


# ----------------------------------------------------------------------------------------------
# Text: normalisation, confusable phrases, negative sentences
# ----------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z']+")
_WAKE_WORD = re.compile(r"[A-Za-z][A-Za-z' -]*")
_DIGRAPHS = frozenset({"th", "sh", "ch", "ph", "gh", "ck", "ng", "wh", "qu"})
_VOWELS = "aeiou"
_CLOSE_CONSONANTS = {
    "p": "b",
    "b": "p",
    "t": "d",
    "d": "t",
    "k": "g",
    "g": "k",
    "c": "g",
    "m": "n",
    "n": "m",
    "s": "z",
    "z": "s",
    "f": "v",
    "v": "f",
    "l": "r",
    "r": "l",
    "w": "v",
}
_VOWEL_SWAPS = {"a": "e", "e": "i", "i": "e", "o": "u", "u": "o"}
_FIRST_WORD_FILLERS = ("a", "the", "my", "hi", "say", "okay")
_STOPWORDS = frozenset({"a", "an", "the", "to", "of", "in", "on", "at", "my", "i", "is", "it", "and", "for"})


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _squash(text: str) -> str:
    return "".join(_words(text)).replace("'", "")


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether `text` contains the letters of `phrase` in a row, ignoring case, spaces and punctuation."""
    return _squash(phrase) in _squash(text)


def _consonant_swaps(word: str) -> list[str]:
    out = []
    for i, letter in enumerate(word):
        swap = _CLOSE_CONSONANTS.get(letter)
        neighbours = (word[max(0, i - 1) : i + 1], word[i : i + 2])
        if swap is None or any(pair in _DIGRAPHS for pair in neighbours):
            continue
        if letter in (word[i - 1 : i], word[i + 1 : i + 2]):  # one letter of a double consonant
            continue
        out.append(word[:i] + swap + word[i + 1 :])
    return out


def _assimilations(word: str) -> list[str]:
    """A consonant cluster made one long consonant: "computer" -> "commuter"."""
    out = []
    for i in range(1, len(word)):
        first, second = word[i - 1], word[i]
        if first in _VOWELS or second in _VOWELS or first == second or first + second in _DIGRAPHS:
            continue
        if first in _CLOSE_CONSONANTS and second in _CLOSE_CONSONANTS:
            out.append(word[:i] + first + word[i + 1 :])
    return out


def _vowel_changes(word: str) -> list[str]:
    out = []
    for i, letter in enumerate(word):
        if letter in _VOWEL_SWAPS and word[i - 1 : i] not in tuple(_VOWELS) and i < len(word) - 1:
            out.append(word[:i] + _VOWEL_SWAPS[letter] + word[i + 1 :])
    return out


def _with_word(words: Sequence[str], index: int, replacement: str) -> str:
    return " ".join([*words[:index], replacement, *words[index + 1 :]])


def confusable_phrases(phrase: str, limit: int) -> list[str]:
    """Up to `limit` phrases that sound close to `phrase` but are not it, most confusable first.

    Works for any phrase, by rules on its spelling, taking one from each family in turn:
    parts of it ("computer", "hey"), a truncated word ("hey compute"), the first word replaced
    by a short word ("a computer"), one consonant swapped for a close one (p/b, t/d, k/g, m/n, s/z,
    f/v, l/r: "hey combuter"), a consonant cluster merged ("hey commuter"), the words reordered,
    one vowel changed. Lower case; never the phrase itself nor anything containing it. The rules
    see letters, not sounds, so a result can still sound like the phrase: check with phonemes
    (`tts.phonemize`) before using them as negatives, as generate_dataset does.
    """
    words = _words(phrase)
    if not words:
        raise ValueError("confusable_phrases needs a phrase with at least one word")
    n = len(words)
    families: list[list[str]] = []
    # parts: every contiguous run of words shorter than the phrase, longest (by letters) first
    parts = [" ".join(words[i:j]) for i in range(n) for j in range(i + 1, n + 1) if j - i < n]
    families.append(sorted(parts, key=lambda p: (-len(p.replace(" ", "")), p)))
    # truncations: the last word first, one letter off before two
    truncated = []
    for drop in (1, 2):
        for index in reversed(range(n)):
            if len(words[index]) - drop >= 3:
                truncated.append(_with_word(words, index, words[index][:-drop]))
    families.append(truncated)
    families.append([" ".join([f, *words[1:]]) for f in _FIRST_WORD_FILLERS if n > 1 and f != words[0]])
    order = sorted(range(n), key=lambda i: (-len(words[i]), i))  # longest word first
    for rule in (_consonant_swaps, _assimilations):
        families.append([_with_word(words, i, w) for i in order for w in rule(words[i])])
    families.append([" ".join(reversed(words))] if n > 1 else [])
    families.append([_with_word(words, i, w) for i in order for w in _vowel_changes(words[i])])

    out: list[str] = []
    seen = {_squash(phrase)}
    longest = max((len(f) for f in families), default=0)
    for rank in range(longest):
        for family in families:
            if rank < len(family) and len(out) < limit:
                candidate = family[rank]
                key = _squash(candidate)
                if key and key not in seen and not contains_phrase(candidate, phrase):
                    seen.add(key)
                    out.append(candidate)
    return out


_NAMES = (
    "Anna", "Peter", "Maria", "David", "Sophie", "James", "Laura", "Michael", "Emma", "Oliver",
    "Grace", "Thomas", "Lucy", "Daniel", "Chloe", "Samuel", "Hannah", "Robert", "Olivia", "Jack",
)  # fmt: skip
_SUBJECTS = (
    "I", "we", "you", "they", "my sister", "the neighbour", "our teacher", "the driver", "my friend",
    "the kids", "grandma", "the manager", "somebody", "everyone", "my brother", "the doctor",
)  # fmt: skip
_VERBS = (
    "open", "close", "find", "bring", "cook", "clean", "paint", "fix", "carry", "watch", "order",
    "borrow", "move", "check", "buy", "sell", "read", "write", "wash", "visit", "pack", "hide",
)  # fmt: skip
_NOUNS = (
    "window", "kitchen", "garden", "letter", "bicycle", "blanket", "bottle", "camera", "ticket",
    "pillow", "basket", "jacket", "candle", "ladder", "bucket", "carpet", "guitar", "pencil", "lamp",
    "door", "table", "chair", "coffee", "sandwich", "umbrella", "newspaper", "radio", "bridge",
    "river", "mountain", "suitcase", "notebook", "kettle", "mirror", "wallet", "envelope", "teapot",
)  # fmt: skip
_ADJECTIVES = (
    "red", "old", "quiet", "heavy", "little", "bright", "broken", "famous", "empty", "warm", "cold",
    "strange", "lovely", "noisy", "yellow", "wooden", "tiny", "huge", "clean", "dusty", "green",
)  # fmt: skip
_PLACES = (
    "in the kitchen", "at the station", "near the river", "on the table", "behind the house",
    "at the market", "in the garden", "upstairs", "downtown", "at school", "by the window",
    "in the car", "under the bed", "next to the door", "in the office",
)  # fmt: skip
_TIMES = (
    "tomorrow", "tonight", "this morning", "on Friday", "next week", "after lunch", "before dinner",
    "in a minute", "later", "right now", "every Sunday", "last summer", "on Monday", "at noon",
)  # fmt: skip
_ADVERBS = ("slowly", "quickly", "carefully", "quietly", "again", "together", "early", "soon", "gently")
_BUILDINGS = ("library", "museum", "hospital", "airport", "bakery", "cinema", "post office", "pharmacy")
_ROOMS = ("kitchen", "bedroom", "living room", "bathroom", "hallway", "garage", "office")
_CITIES = ("London", "Paris", "Tokyo", "Sydney", "Chicago", "Madrid", "Toronto", "Berlin", "Dublin")
_GENRES = ("jazz", "rock", "classical", "country", "piano", "dance", "folk")
_NUMBERS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "eleven", "twelve",
    "fifteen", "twenty", "forty five", "ninety", "a hundred", "three hundred", "a thousand",
)  # fmt: skip
_RELATIVES = ("aunt", "uncle", "cousin", "grandfather", "sister", "brother", "mother", "father")
_GREETINGS = ("hello", "hi", "good morning", "good evening", "hey", "welcome back", "goodbye")
_PHRASES = (
    "thank you very much", "see you later", "what a lovely day", "I don't know", "are you sure",
    "that sounds good", "let me think", "not right now", "excuse me", "how much is it",
    "never mind", "well done", "just a moment", "I'm on my way", "see you soon",
)  # fmt: skip
_TEMPLATES = (
    "{subject} will {verb} the {noun} {time}",
    "could you {verb} the {adjective} {noun} {place}",
    "{name} left the {noun} {place}",
    "the {noun} {place} is {adjective}",
    "did {name} {verb} the {noun} {time}",
    "please {verb} the {noun}",
    "I can't find my {noun}",
    "where did you put the {adjective} {noun}",
    "{name} and {name2} went to the {building} {time}",
    "turn on the {room} lights",
    "turn off the {room} lights",
    "set a timer for {number} minutes",
    "what time is it in {city}",
    "play some {genre} music",
    "what is the weather like {time}",
    "remind me to {verb} the {noun} {time}",
    "{greeting} {name}",
    "{greeting}, how are you",
    "I think the {noun} is {adjective}",
    "we should {verb} the {noun} {adverb}",
    "{number} {noun}s",
    "the {adjective} {noun}",
    "it costs {number} dollars",
    "my {relative} lives in {city}",
    "is the {building} open {time}",
    "that {noun} looks really {adjective}",
    "let's {verb} the {noun} together",
    "{subject} walked {adverb} to the {building}",
    "{phrase}",
    "{phrase}, {name}",
    "{noun}",
    "{verb}",
    "{adjective} {noun}",
    "{number}",
    "{name}",
)
_FIELDS = {
    "name": _NAMES,
    "name2": _NAMES,
    "subject": _SUBJECTS,
    "verb": _VERBS,
    "noun": _NOUNS,
    "adjective": _ADJECTIVES,
    "place": _PLACES,
    "time": _TIMES,
    "adverb": _ADVERBS,
    "building": _BUILDINGS,
    "room": _ROOMS,
    "city": _CITIES,
    "genre": _GENRES,
    "number": _NUMBERS,
    "relative": _RELATIVES,
    "greeting": _GREETINGS,
    "phrase": _PHRASES,
}
_TEMPLATE_FIELD = re.compile(r"{(\w+)}")


def _is_negative_text(text: str, wake_word: str, wake_content: frozenset[str]) -> bool:
    return not contains_phrase(text, wake_word) and not wake_content.intersection(_words(text))


def negative_texts(rng: np.random.Generator, count: int, wake_word: str) -> list[str]:
    """`count` varied sentences and words (templates x word lists) that never contain the wake word.

    Neither the wake phrase nor any of its words other than short function words ("a", "the")
    appears. Distinct while the templates allow, then repeating.
    """
    content = frozenset(_words(wake_word)) - _STOPWORDS
    pools = {
        name: [v for v in values if _is_negative_text(v, wake_word, content)]
        for name, values in _FIELDS.items()
    }
    templates = [t for t in _TEMPLATES if all(pools[f] for f in _TEMPLATE_FIELD.findall(t))]
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < count and templates:
        template = templates[int(rng.integers(len(templates)))]
        text = template.format(**{f: pools[f][int(rng.integers(len(pools[f])))] for f in pools})
        attempts += 1
        fresh = text not in seen or attempts > count * 50
        if fresh and _is_negative_text(text, wake_word, content):
            seen.add(text)
            out.append(text)
        if attempts > count * 100:
            break
    if len(out) < count:
        raise GenerationError(
            f"Could not build sentences without the wake word {wake_word!r}: it is made of words so common "
            "that the built-in sentence templates cannot avoid them. Choose a more distinctive wake word."
        )
    return out


# ----------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------


def _db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _unit_rms(x: np.ndarray) -> np.ndarray:
    level = _rms(x)
    return x / level if level > 0 else x


def _limit_peak(x: np.ndarray, peak: float = PEAK_LIMIT) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (peak / top) if top > peak else x


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power falling as 1/f**exponent: 0 white, 1 pink, 2 brown (flat below 20 Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ), 20.0)
    spectrum *= freqs ** (-exponent / 2.0)
    return _unit_rms(np.fft.irfft(spectrum, n))


def mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS mains hum: 50 or 60 Hz and harmonics at random levels, over a faint noise floor."""
    base = float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / SAMPLE_RATE_HZ
    hum = np.zeros(n)
    for harmonic in range(1, int(rng.integers(4, 9)) + 1):
        level = rng.uniform(0.1, 1.0) * harmonic ** -rng.uniform(0.3, 1.2)
        hum += level * np.sin(2 * np.pi * base * harmonic * t + rng.uniform(0, 2 * np.pi))
    return _unit_rms(_unit_rms(hum) + _db_to_gain(rng.uniform(-45.0, -25.0)) * rng.standard_normal(n))


def room_impulse_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic RIR: direct-path impulse, a few early reflections, an exponentially decaying tail.

    The tail is low-passed noise decaying by 60 dB over `rt60` seconds; the result has unit peak.
    """
    n = int((rt60 * 1.2 + 0.05) * SAMPLE_RATE_HZ)
    direct = int(rng.uniform(0.001, 0.004) * SAMPLE_RATE_HZ)
    after = np.maximum(np.arange(n) - direct, 0) / SAMPLE_RATE_HZ
    envelope = np.exp(-np.log(1000.0) * after / rt60) * (1.0 - np.exp(-after / rng.uniform(0.002, 0.008)))
    smoothing = rng.uniform(0.2, 0.7)  # air and wall absorption: the tail loses treble
    tail = lfilter([1.0 - smoothing], [1.0, -smoothing], rng.standard_normal(n)) * envelope
    direct_to_reverb_db = rng.uniform(-6.0, 9.0)
    tail *= math.sqrt(_db_to_gain(-direct_to_reverb_db) ** 2 / max(float(np.sum(tail**2)), 1e-12))
    response = tail
    response[direct] += 1.0
    for _ in range(int(rng.integers(3, 7))):
        delay = direct + int(rng.uniform(0.002, 0.035) * SAMPLE_RATE_HZ)
        if delay < n:
            response[delay] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.7)
    return response / np.max(np.abs(response))


def _voice_params(rng: np.random.Generator) -> dict[str, int]:
    return {
        "rate_wpm": int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
        "pitch": int(rng.integers(PITCH[0], PITCH[1] + 1)),
        "pitch_range": int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
    }


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _speak(rng: np.random.Generator, text: str, voice: str) -> np.ndarray:
    return tts.synthesize(text, voice, **_voice_params(rng)).astype(np.float64)


def babble(rng: np.random.Generator, n: int, voices: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Unit-RMS babble: 4-8 talkers with different voices, each speaking sentences back to back."""
    mix = np.zeros(n)
    talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    for voice in rng.choice(np.array(voices), size=min(talkers, len(voices)), replace=False):
        talker = np.zeros(n)
        position = -int(rng.uniform(0.0, 1.5) * SAMPLE_RATE_HZ)
        while position < n:
            speech = _speak(rng, _pick(rng, texts), str(voice))
            start, end = max(position, 0), min(position + speech.size, n)
            if end > start:
                talker[start:end] += speech[start - position : end - position]
            position += speech.size + int(rng.uniform(0.05, 0.4) * SAMPLE_RATE_HZ)
        mix += _unit_rms(talker) * _db_to_gain(rng.uniform(-6.0, 0.0))
    return _unit_rms(mix)


def _background(
    rng: np.random.Generator, kind: str, n: int, voices: Sequence[str], texts: Sequence[str]
) -> np.ndarray:
    if kind == "mixture":
        parts = rng.choice(np.array(BACKGROUND_KINDS[:-1]), size=int(rng.integers(2, 4)), replace=False)
        mix = sum(
            _background(rng, str(p), n, voices, texts) * _db_to_gain(rng.uniform(-12.0, 0.0)) for p in parts
        )
        return _unit_rms(np.asarray(mix))
    if kind == "hum":
        return mains_hum(rng, n)
    if kind == "babble":
        return babble(rng, n, voices, texts)
    return colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])


def _place(
    rng: np.random.Generator, speech: np.ndarray, seconds: tuple[float, float], crop: bool
) -> np.ndarray:
    """Pad speech with silence to a random length in `seconds`; longer speech is cropped or kept whole."""
    shortest, longest = (int(s * SAMPLE_RATE_HZ) for s in seconds)
    if speech.size >= longest:
        if not crop:
            return speech
        fade = np.linspace(1.0, 0.0, SAMPLE_RATE_HZ // 50)
        clip = speech[:longest].copy()
        clip[-fade.size :] *= fade
        return clip
    total = int(rng.integers(max(shortest, speech.size), longest + 1))
    lead = int(rng.integers(0, total - speech.size + 1))
    clip = np.zeros(total)
    clip[lead : lead + speech.size] = speech
    return clip


# ----------------------------------------------------------------------------------------------
# Jobs: one output file each, everything decided by the plan and the job's own seed
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SpeechJob:
    path: str
    text: str
    voice: str
    seconds: tuple[float, float]
    crop: bool
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        rng = np.random.default_rng(self.seed)
        speech = _speak(rng, self.text, self.voice)
        clip = _place(rng, speech, self.seconds, self.crop)
        clip *= _db_to_gain(rng.uniform(*PEAK_DBFS)) / max(float(np.max(np.abs(clip))), 1e-9)
        write_wav(root / self.path, clip)
        return clip.size / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class _BackgroundJob:
    path: str
    kind: str
    voices: tuple[str, ...]
    texts: tuple[str, ...]
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        rng = np.random.default_rng(self.seed)
        n = BACKGROUND_CLIP_MS * SAMPLE_RATE_HZ // 1000
        noise = _background(rng, self.kind, n, self.voices, self.texts)
        write_wav(root / self.path, _limit_peak(noise * _db_to_gain(rng.uniform(*BACKGROUND_RMS_DBFS))))
        return n / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class _RirJob:
    path: str
    rt60: float
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        response = room_impulse_response(np.random.default_rng(self.seed), self.rt60)
        write_wav(root / self.path, response)
        return response.size / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class _AmbientJob:
    path: str
    seconds: float
    voices: tuple[str, ...]
    texts: tuple[str, ...]
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        rng = np.random.default_rng(self.seed)
        n = int(self.seconds * SAMPLE_RATE_HZ)
        bed = colored_noise(rng, n, rng.uniform(0.5, 2.0))
        if rng.random() < 0.5:
            bed = _unit_rms(bed + mains_hum(rng, n) * _db_to_gain(rng.uniform(-20.0, -6.0)))
        noise_rms = _db_to_gain(rng.uniform(*AMBIENT_NOISE_RMS_DBFS))
        audio = bed * noise_rms
        position = int(rng.uniform(*AMBIENT_GAP_SECONDS) * SAMPLE_RATE_HZ)
        while position < n:
            speech = _speak(
                rng, str(rng.choice(np.array(self.texts))), str(rng.choice(np.array(self.voices)))
            )
            if position + speech.size > n:
                break
            gain = noise_rms * _db_to_gain(rng.uniform(*AMBIENT_SNR_DB)) / max(_rms(speech), 1e-9)
            audio[position : position + speech.size] += speech * gain
            position += speech.size + int(rng.uniform(*AMBIENT_GAP_SECONDS) * SAMPLE_RATE_HZ)
        write_wav(root / self.path, _limit_peak(audio))
        return n / SAMPLE_RATE_HZ


_Job = _SpeechJob | _BackgroundJob | _RirJob | _AmbientJob


def _run_job(item: tuple[_Job, str]) -> float:
    job, root = item
    return job.run(Path(root))


# ----------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------


def speaker_id(voice: str) -> str:
    """The folder name of a voice: "en-us+f3" -> "en-us_f3"."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", voice).strip("_")


def _clean_wake_word(wake_word: str) -> str:
    text = " ".join(str(wake_word).split())
    if not text or not _WAKE_WORD.fullmatch(text) or not _words(text):
        raise GenerationError(
            f"The wake word {wake_word!r} cannot be used: give one or more English words made of letters "
            '(spaces, hyphens and apostrophes allowed), for example "hey computer".'
        )
    return text.lower()


def _resolve_counts(size: str, counts: GenerationCounts | Mapping[str, float] | None) -> GenerationCounts:
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


def _wake_variants(wake_word: str) -> list[str]:
    words = wake_word.split()
    variants = [wake_word, wake_word, wake_word, f"{wake_word}!", f"{wake_word}.", f"{wake_word}?"]
    if len(words) > 1:
        variants.append(f"{words[0]}, {' '.join(words[1:])}")
    return variants


# Sounds that running English speech does not keep apart, as (espeak phoneme pattern, stand-in):
# the American flap ("latter" sounds like "ladder"), and a nasal before a stop, which takes the stop's
# place ("conputer" is said "computer"). A confusable that differs from the wake word only by these
# is the wake word to a listener: as a negative it would teach the model to reject the wake word.
SOUND_MERGERS = (
    (r"t#", "d"),
    (r"[mnN](?=[pb])", "m"),
    (r"[mnN](?=[td])", "n"),
    (r"[mnN](?=[kg])", "N"),
)


def _phonetic_key(phonemes: str) -> str:
    key = re.sub(r"[\s',_-]+", "", phonemes)
    for pattern, stand_in in SOUND_MERGERS:
        key = re.sub(pattern, stand_in, key)
    return key


def _audibly_distinct(phrases: Sequence[str], wake_word: str) -> list[str]:
    """Drop phrases whose espeak phonemes contain the wake word's (homophones, also up to the sounds of
    SOUND_MERGERS), and sound-alike twins."""
    keys = [_phonetic_key(p) for p in tts.phonemize([wake_word, *phrases])]
    wake_key, seen, out = keys[0], set(), []
    for phrase, key in zip(phrases, keys[1:], strict=True):
        if key and wake_key not in key and key not in seen:
            seen.add(key)
            out.append(phrase)
    return out


@dataclass
class _Plan:
    jobs: list[_Job]
    counts: dict[str, int]
    ambient_seconds: float
    speakers: dict[str, str]  # folder -> voice
    held_out: list[str]
    hard_phrases: list[str]


def _plan(wake_word: str, counts: GenerationCounts, seed: int) -> _Plan:
    voices = tuple(tts.list_english_voices())
    rng = np.random.default_rng([seed, 0])
    chosen = _choose_speakers(rng, voices, counts.speakers)
    folders = [speaker_id(v) for v in chosen]
    speakers = dict(zip(folders, chosen, strict=True))
    held_out = sorted(speaker_id(v) for v in held_out_voices(chosen, HELD_OUT_FRACTION))
    texts = negative_texts(rng, max(counts.negatives, TEXT_POOL_SIZE), wake_word)
    pool = tuple(texts[:TEXT_POOL_SIZE])
    hard = _audibly_distinct(confusable_phrases(wake_word, HARD_NEGATIVE_PHRASES * 2), wake_word)
    hard = hard[:HARD_NEGATIVE_PHRASES]
    jobs: list[_Job] = []

    n_files = math.ceil(counts.ambient_seconds / AMBIENT_FILE_SECONDS) if counts.ambient_seconds > 0 else 0
    # About one utterance in AMBIENT_CONFUSABLE_EVERY is a confusable phrase (never the wake word),
    # as in real rooms: false activations per hour measured on it then mean something.
    repeats = max(1, len(pool) // max(1, (AMBIENT_CONFUSABLE_EVERY - 1) * len(hard)))
    ambient_pool = pool + tuple(hard) * repeats
    for i in range(n_files):
        jobs.append(
            _AmbientJob(
                f"ambient/ambient_{i:03d}.wav",
                counts.ambient_seconds / n_files,
                voices,
                ambient_pool,
                (seed, 1, i),
            )
        )
    for i in range(counts.background):
        kind = BACKGROUND_KINDS[i % len(BACKGROUND_KINDS)]
        extra = (voices, pool) if kind in ("babble", "mixture") else ((), ())
        jobs.append(_BackgroundJob(f"background/{i:03d}_{kind}.wav", kind, *extra, (seed, 2, i)))

    variants = _wake_variants(wake_word)
    index = 0
    for folder, number in zip(folders, _spread(counts.positives, len(folders)), strict=True):
        for _ in range(number):
            text = variants[int(rng.integers(len(variants)))]
            path = f"positive/{folder}/pos_{index:05d}.wav"
            jobs.append(_SpeechJob(path, text, speakers[folder], POSITIVE_SECONDS, False, (seed, 3, index)))
            index += 1
    for i in range(counts.negatives):
        folder = folders[i % len(folders)]
        path = f"negative/{folder}/neg_{i:05d}.wav"
        jobs.append(_SpeechJob(path, texts[i], speakers[folder], NEGATIVE_SECONDS, True, (seed, 4, i)))
    queue: list[str] = []
    used: set[str] = set()
    for i in range(counts.hard_negatives if hard else 0):
        if not queue:
            queue = [hard[j] for j in rng.permutation(len(hard))]
        folder, text = folders[i % len(folders)], queue.pop()
        used.add(text)
        path = f"hard_negative/{folder}/hard_{i:05d}.wav"
        jobs.append(_SpeechJob(path, text, speakers[folder], POSITIVE_SECONDS, False, (seed, 5, i)))
    for i in range(counts.rirs):
        rt60 = RT60_SECONDS[0] + (RT60_SECONDS[1] - RT60_SECONDS[0]) * (i + rng.random()) / counts.rirs
        jobs.append(_RirJob(f"rirs/rir_{i:03d}_rt60_{round(rt60 * 1000)}ms.wav", rt60, (seed, 6, i)))

    tally = {name: sum(1 for job in jobs if job.path.startswith(f"{name}/")) for name in SUBFOLDERS}
    used_phrases = [p for p in hard if p in used]
    return _Plan(jobs, tally, counts.ambient_seconds if n_files else 0.0, speakers, held_out, used_phrases)


# ----------------------------------------------------------------------------------------------
# Running and metadata
# ----------------------------------------------------------------------------------------------


def _default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _run(jobs: Sequence[_Job], root: Path, workers: int, progress: bool) -> None:
    items = [(job, str(root)) for job in jobs]
    with tqdm(total=len(items), desc="mww-generate", unit="file", disable=not progress) as bar:
        if workers <= 1 or len(items) < 2:
            for item in items:
                _run_job(item)
                bar.update(1)
            return
        with get_context("spawn").Pool(min(workers, len(items))) as pool:
            for _ in pool.imap_unordered(_run_job, items, chunksize=1):
                bar.update(1)


def _title(wake_word: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in wake_word.split())


def _write_metadata(
    output_dir: Path, wake_word: str, size: str, seed: int, counts: GenerationCounts, plan: _Plan
) -> dict[str, Path]:
    paths = _dataset_paths(output_dir)
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
        "tts": "espeak-ng (espeakng-loader), accents x voice variants",
    }
    atomic_write_json(paths["manifest"], manifest)
    atomic_write_text(paths["readme"], _readme(wake_word, size, seed, plan, override_path))
    return paths


def _dataset_paths(output_dir: Path) -> dict[str, Path]:
    """Each folder under its config key (positive_dir, ...), plus "override", "manifest" and "readme"."""
    paths = {OVERRIDE_KEYS[name]: output_dir / name for name in SUBFOLDERS}
    return {
        **paths,
        "override": output_dir / "demo_override.yaml",
        "manifest": output_dir / "generation.json",
        "readme": output_dir / "README.txt",
    }


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


def _made_here(output_dir: Path) -> dict | None:
    """The generation.json of a dataset this generator wrote into `output_dir`, or None."""
    try:
        manifest = json.loads(_dataset_paths(output_dir)["manifest"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
        return None
    return manifest if all(key in manifest for key in _MANIFEST_KEYS) else None


def stale_reason(
    output_dir: Path, wake_word: str, size: str, seed: int, counts: GenerationCounts
) -> str | None:
    """Why `output_dir` does not hold what this generator writes for this request now; None if it does.

    Current means: written by this generator version with the installed speech library, for the same
    wake word, size, seed and counts, with every file it lists still in place.
    """
    manifest = _made_here(output_dir)
    if manifest is None:
        return f"{output_dir} holds no generation.json written by {GENERATOR}"
    return _other_request(manifest, wake_word, size, seed, counts) or _changed_files(output_dir, manifest)


def _other_request(
    manifest: dict, wake_word: str, size: str, seed: int, counts: GenerationCounts
) -> str | None:
    """How the generation.json's version, speech library or request differ from this one, or None."""
    made_by = manifest.get("generator_version")
    if made_by != GENERATOR_VERSION:
        earlier = f"version {made_by}" if made_by else "an earlier version (before versions were recorded)"
        return f"it was made by {GENERATOR} {earlier}; this is version {GENERATOR_VERSION}"
    if manifest.get("tts_version") != tts.package_version():
        return (
            f"it was made with espeakng-loader {manifest.get('tts_version') or '(unknown)'}; "
            f"{tts.package_version() or 'none'} is installed now"
        )
    made_for = (manifest.get("wake_word"), manifest.get("size"), manifest.get("seed"))
    if made_for != (wake_word, size, seed) or manifest.get("requested") != asdict(counts):
        return (
            f"it was made for wake word {made_for[0]!r}, size {made_for[1]}, seed {made_for[2]} "
            f"(asked now: {wake_word!r}, size {size}, seed {seed}"
            + (")" if made_for != (wake_word, size, seed) else ", with other counts)")
        )
    return None


def _changed_files(output_dir: Path, manifest: dict) -> str | None:
    """How the folder differs from the files its generation.json lists (added, removed), or None."""
    listed = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    for name in SUBFOLDERS:
        found = sum(1 for _ in (output_dir / name).rglob("*.wav")) if (output_dir / name).is_dir() else 0
        if found != listed.get(name):
            return f"{name}/ holds {found} WAV files where generation.json lists {listed.get(name)}"
    override = _dataset_paths(output_dir)["override"]
    if not override.is_file():
        return f"{override.name} is missing"
    return None


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
        paths=_dataset_paths(output_dir),
        elapsed_s=time.perf_counter() - started,
        reused=True,
    )


def _readme(wake_word: str, size: str, seed: int, plan: _Plan, override: Path) -> str:
    c = plan.counts
    minutes = plan.ambient_seconds / 60
    return "\n".join(
        [
            f'Synthetic wake-word dataset for "{wake_word}" made by mww-generate (size {size}, seed {seed}).',
            "",
            "All audio is 16-bit mono WAV at the device sample rate, synthesised offline with espeak-ng",
            "voices (accent x voice variant = one speaker) and generated noise. It is meant for trying the",
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
) -> GenerationSummary:
    """Synthesise a demo dataset into `output_dir` (layout in the module docstring); deterministic per seed.

    `size` picks the counts ("small" or "medium"); `counts` overrides them (a GenerationCounts or a
    dict of some of its fields). An output folder whose dataset subfolders already hold files is
    refused (OutputExistsError) unless `overwrite`, which deletes those subfolders first. With
    `reuse`, a dataset this generator already made there for the same request is kept as it is
    (`reused` in the summary; see `stale_reason`), and one it made for another request or with an
    older version is replaced (`replaced` gives the reason); other files are still refused. `workers`
    processes synthesise in parallel (default: every available core). Raises GenerationError for
    bad input and tts.TTSUnavailableError when speech synthesis cannot run.
    """
    started = time.perf_counter()
    wake = _clean_wake_word(wake_word)
    resolved = _resolve_counts(size, counts)
    if not isinstance(seed, int) or seed < 0:
        raise GenerationError(f"The seed must be a whole number of at least 0, got {seed!r}.")
    output_dir = Path(output_dir).expanduser().resolve()
    replaced = note = None
    made = _made_here(output_dir) if reuse else None
    if made is not None:
        other = _other_request(made, wake, size, seed, resolved)
        changed = _changed_files(output_dir, made)
        if other is None and changed is None:
            return _existing_summary(output_dir, made, started)
        if changed is None:
            replaced = other  # exactly the files this generator wrote, only outdated: safe to replace
        else:
            note = f"{other}, and {changed}" if other else changed
    _check_output(output_dir, overwrite or replaced is not None, note)
    plan = _plan(wake, resolved, seed)  # loads the speech library before anything is deleted
    for name in SUBFOLDERS:
        target = output_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for name in METADATA_FILES:
        (output_dir / name).unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    _run(plan.jobs, output_dir, _default_workers() if workers is None else workers, progress)
    paths = _write_metadata(output_dir, wake, size, seed, resolved, plan)
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
    )
