"""Everyday sentences and words for the negatives and for ambient speech, built from templates and word
lists so that none contains the wake word or any of its content words."""

from __future__ import annotations

import re

import numpy as np

from mww.synth.phrases import contains_phrase, split_words
from mww.synth.request import GenerationError

_STOPWORDS = frozenset({"a", "an", "the", "to", "of", "in", "on", "at", "my", "i", "is", "it", "and", "for"})
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
    return not contains_phrase(text, wake_word) and not wake_content.intersection(split_words(text))


def negative_texts(rng: np.random.Generator, count: int, wake_word: str) -> list[str]:
    """`count` varied sentences and words (templates x word lists) that never contain the wake word.

    Neither the wake phrase nor any of its words other than short function words ("a", "the")
    appears. Distinct while the templates allow, then repeating.
    """
    content = frozenset(split_words(wake_word)) - _STOPWORDS
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
