"""The wake phrase's confusables: spelling rules, and the phoneme check that drops sound-alikes."""

from __future__ import annotations

import pytest

from mww.synth.phrases import audibly_distinct, confusable_phrases, contains_phrase, phonetic_key
from mww.synth.plan import HARD_NEGATIVE_PHRASES


def test_confusable_phrases_for_hey_computer():
    phrases = confusable_phrases("hey computer", 12)
    assert len(phrases) == 12 and len(set(phrases)) == 12
    assert {"computer", "hey compute", "a computer"} <= set(phrases)
    assert "hey computer" not in phrases

    def one_consonant_apart(a: str, b: str) -> bool:
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y] if len(a) == len(b) else []
        return len(diff) == 1 and all(c not in "aeiou " for c in diff[0])

    assert any(one_consonant_apart(p, "hey computer") for p in phrases)
    assert any(p in ("hey commuter", "hey computor", "hey compuder") for p in phrases)
    assert confusable_phrases("Hey, Computer!", 12) == phrases  # case and punctuation do not matter
    assert confusable_phrases("hey computer", 3) == phrases[:3]


def test_confusables_that_sound_like_the_wake_word_are_not_negatives():
    candidates = confusable_phrases("hey computer", 2 * HARD_NEGATIVE_PHRASES)
    assert {"hey compuder", "hey conputer"} <= set(candidates)  # the spelling rules make them...
    phrases = audibly_distinct(candidates, "hey computer")  # ...the phonemes drop them
    # In American speech "compuder" has the flap of "computer", and "conputer" its m: the same sound.
    assert not {"hey compuder", "hey conputer"} & set(phrases)
    assert {"hey combuter", "hey commuter", "hi computer", "hey compute"} <= set(phrases)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("h'eI k@mpj'u:t#3", "h'eI k@mpj'u:d3", True),  # the American flap
        ("h'eI k@mpj'u:t#3", "h'eI k@npj'u:t#3", True),  # a nasal takes the place of the next stop
        ("'InpUt", "'ImpUt", True),
        ("h'eI k@mpj'u:t#3", "h'eI k@mbj'u:t#3", False),  # p / b stay apart
        ("h'eI k@mpj'u:t#3", "h'eI k@mj'u:t#3", False),
        ("n'aIt", "m'aIt", False),  # a nasal before a vowel keeps its place
    ],
)
def test_phonetic_key_merges_only_sounds_speech_does_not_keep_apart(a, b, same):
    assert (phonetic_key(a) == phonetic_key(b)) is same


@pytest.mark.parametrize("phrase", ["alexa", "ok nabu", "hey jarvis", "turn on the light"])
def test_confusable_phrases_work_for_any_phrase(phrase):
    phrases = confusable_phrases(phrase, 20)
    assert phrases and len(phrases) <= 20
    assert not any(contains_phrase(p, phrase) for p in phrases)
