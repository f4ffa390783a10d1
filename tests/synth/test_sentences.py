"""Negative sentences: varied, and never the wake word nor any of its words."""

from __future__ import annotations

import numpy as np

from mww.synth.phrases import contains_phrase
from mww.synth.sentences import negative_texts


def test_negative_texts_never_contain_the_wake_word():
    texts = negative_texts(np.random.default_rng(0), 500, "hey computer")
    assert len(set(texts)) > 400
    assert not any(contains_phrase(t, "hey computer") for t in texts)
    assert not any({"hey", "computer"} & set(t.lower().replace(",", "").split()) for t in texts)
