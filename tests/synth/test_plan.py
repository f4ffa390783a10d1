"""The dataset plan's speakers: whole voice variants held out, about a fifth of them."""

from __future__ import annotations

from mww.synth.plan import held_out_voices, plan_dataset
from mww.synth.request import GenerationCounts


def test_held_out_voices_take_whole_variants_about_a_fifth():
    chosen = ["en+f1", "en-us+m2", "en+zac", "en-us+f1", "en-029+m2", "en-gb-x-rp+zac", "en+m3", "en-us+m3"]
    chosen += [f"en-029+v{i}" for i in range(12)]  # 20 voices; variants in first-chosen order
    held = held_out_voices(chosen, 0.2)
    assert held == chosen[-4:]  # the last four variants, one voice each, make 20 %
    held = held_out_voices(chosen[:8], 0.5)  # four variants of two voices each
    assert sorted(held) == sorted(["en+zac", "en-gb-x-rp+zac", "en+m3", "en-us+m3"])
    assert held_out_voices(["en+f1", "en-us+f1"], 0.2) == []  # one variant: nothing to hold out
    assert held_out_voices(["en+f1", "en+m1"], 0.2) == ["en+m1"]


def test_no_held_out_timbre_is_heard_in_training():
    """With more speakers than variants, every accent of a held-out variant is held out."""
    plan = plan_dataset("hey computer", GenerationCounts(300, 0, 0, 0, 0, 0.0, 300), seed=0)
    variant = {folder: voice.partition("+")[2] for folder, voice in plan.speakers.items()}
    held = {variant[f] for f in plan.held_out}
    trained = {variant[f] for f in plan.speakers if f not in plan.held_out}
    n_held, n_trained = len(plan.held_out), len(trained)
    print(f"\n300 speakers: {n_held} held out ({len(held)} variants); {n_trained} variants in training")
    assert held and not held & trained
    assert 0.15 <= len(plan.held_out) / 300 <= 0.3
