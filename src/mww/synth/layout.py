"""The generated dataset's folder layout, and the config key each folder is given under in the override.

positive/<speaker>/*.wav        the wake word, several prosody variants per speaker
negative/<speaker>/*.wav        sentences and words that are not the wake word
hard_negative/<speaker>/*.wav   phonetically close phrases (see `phrases.confusable_phrases`)
background/*.wav                ten-second clips: coloured noise, mains hum, babble, mixtures
rirs/*.wav                      synthetic room impulse responses (RT60 0.2-1.0 s)
ambient/ambient_NNN.wav         long stretches of speech over noise, now and then a confusable
                                phrase, never the wake phrase
README.txt, generation.json     what was generated
demo_override.yaml              trainer override: absolute dataset paths, held-out speakers
"""

from __future__ import annotations

from pathlib import Path

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


def dataset_paths(output_dir: Path) -> dict[str, Path]:
    """Each folder under its config key (positive_dir, ...), plus "override", "manifest" and "readme"."""
    paths = {OVERRIDE_KEYS[name]: output_dir / name for name in SUBFOLDERS}
    return {
        **paths,
        "override": output_dir / "demo_override.yaml",
        "manifest": output_dir / "generation.json",
        "readme": output_dir / "README.txt",
    }
