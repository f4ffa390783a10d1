"""The wake phrase on paper and aloud: its words, the phrases that sound close to it, and which of those
a listener can tell apart from it.

`confusable_phrases` builds candidates from the spelling; `audibly_distinct` checks them against the
espeak phonemes of the wake word (up to the sounds of `SOUND_MERGERS`), so that no hard negative is the
wake word said another way. `wake_variants` gives the punctuations the positives are spoken with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mww.synth import tts

_WORD = re.compile(r"[a-z']+")
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


def split_words(text: str) -> list[str]:
    """The lower-case words of `text` (letters and apostrophes), punctuation dropped."""
    return _WORD.findall(text.lower())


def _squash(text: str) -> str:
    return "".join(split_words(text)).replace("'", "")


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
    (`audibly_distinct`) before using them as negatives, as the dataset plan does.
    """
    words = split_words(phrase)
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


def wake_variants(wake_word: str) -> list[str]:
    """The texts the positives say: the wake word plain (three times as often), with ! . ? and a comma."""
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


def phonetic_key(phonemes: str) -> str:
    """Espeak phonemes without stress, spacing or pauses, the sounds of SOUND_MERGERS made one."""
    key = re.sub(r"[\s',_-]+", "", phonemes)
    for pattern, stand_in in SOUND_MERGERS:
        key = re.sub(pattern, stand_in, key)
    return key


def audibly_distinct(phrases: Sequence[str], wake_word: str) -> list[str]:
    """Drop phrases whose espeak phonemes contain the wake word's (homophones, also up to the sounds of
    SOUND_MERGERS), and sound-alike twins."""
    keys = [phonetic_key(p) for p in tts.phonemize([wake_word, *phrases])]
    wake_key, seen, out = keys[0], set(), []
    for phrase, key in zip(phrases, keys[1:], strict=True):
        if key and wake_key not in key and key not in seen:
            seen.add(key)
            out.append(phrase)
    return out
