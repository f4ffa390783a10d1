"""Piper voices (the piper-tts package, run by ONNX Runtime on the CPU): checking a voice file, and
speaking with it so that the same call gives the same samples in any process.

A Piper voice is a `NAME.onnx` model with its `NAME.onnx.json` config beside it. A multi-speaker
voice holds several speakers, chosen by id; each (voice file, speaker id) is one speaker of the
dataset. A speaker travels through the generator's jobs as the text `piper:<absolute .onnx path>#<id>`.

Determinism: Piper's model draws its noise from ONNX Runtime's random generator, which is seeded once
per session and advances with every run. Every synthesis therefore runs in a new session created
right after `onnxruntime.set_seed(seed)`, from the model bytes read once per process (about 0.15 s
per call, without graph optimizations, on one thread); the seed comes from the job's own generator.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mww.device.audio import resample
from mww.device.constants import SAMPLE_RATE_HZ
from mww.errors import MwwError
from mww.synth.tts import TTSUnavailableError, trim_silence

PREFIX = "piper:"
CONFIG_SUFFIX = ".json"  # the config of x.onnx is x.onnx.json
INPUTS = ("input", "input_lengths", "scales")  # and "sid" for a multi-speaker voice
_TRIAL_TEXT = "hello"
_lock = threading.Lock()


class PiperVoiceError(MwwError, ValueError):
    """A file given as a Piper voice that is not one (or not usable), explained in one paragraph."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(
            f"{path} cannot be used as a Piper voice: {problem}. A Piper voice is a NAME.onnx model with "
            "its NAME.onnx.json config beside it, as Piper's voice packages ship them (for example "
            "en_US-lessac-medium.onnx and en_US-lessac-medium.onnx.json); pass the .onnx file with "
            "--piper-voice, or leave the flag out to speak with espeak only."
        )


@dataclass(frozen=True)
class PiperVoiceFile:
    """A checked Piper voice: its model file, its speakers and what identifies its contents."""

    path: Path
    speakers: tuple[str, ...]  # speaker names by id (the id itself where the config names none)
    sample_rate: int
    sha256: str
    config_sha256: str

    @property
    def name(self) -> str:
        """The voice's name: its file name without .onnx ("en_US-joe-medium")."""
        return self.path.name.removesuffix(".onnx")

    def voice(self, speaker: int) -> str:
        """The speaker as the generator's jobs name it."""
        return f"{PREFIX}{self.path}#{speaker}"

    def folder(self, speaker: int) -> str:
        """The dataset folder of one of its speakers: piper_<name>, or piper_<name>_<speaker> when it has
        several."""
        label = self.name if len(self.speakers) == 1 else f"{self.name}_{self.speakers[speaker]}"
        return "piper_" + re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")

    def record(self) -> dict[str, Any]:
        """What generation.json records of it."""
        return {
            "path": str(self.path),
            "name": self.name,
            "speakers": len(self.speakers),
            "sample_rate_hz": self.sample_rate,
            "sha256": self.sha256,
            "config_sha256": self.config_sha256,
        }


def is_piper(voice: str) -> bool:
    """Whether a job's voice is a Piper speaker (else it is an espeak voice)."""
    return voice.startswith(PREFIX)


def parse_voice(voice: str) -> tuple[Path, int]:
    """(.onnx path, speaker id) of a Piper speaker named as `PiperVoiceFile.voice` names it."""
    path, _, speaker = voice.removeprefix(PREFIX).rpartition("#")
    return Path(path), int(speaker)


def _piper() -> tuple[Any, Any]:
    """The onnxruntime and piper modules, imported on first use."""
    try:
        import onnxruntime
        import piper
    except ImportError as exc:
        raise TTSUnavailableError(
            f"Piper voices need the piper-tts package and ONNX Runtime ({exc}). Install them with "
            "pip install piper-tts (no system package, root or network beyond the package index), or "
            "speak with espeak only (--tts espeak)."
        ) from exc
    return onnxruntime, piper


def package_versions() -> str:
    """The installed piper-tts and onnxruntime versions (both shape every clip); "" if absent."""
    try:
        versions = [f"{name} {importlib.metadata.version(name)}" for name in ("piper-tts", "onnxruntime")]
    except importlib.metadata.PackageNotFoundError:
        return ""
    return ", ".join(versions)


def _read_config(path: Path) -> tuple[dict[str, Any], bytes]:
    config_path = path.with_name(path.name + CONFIG_SUFFIX)
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        raise PiperVoiceError(path, f"its config {config_path.name} is not beside it") from None
    except OSError as exc:
        raise PiperVoiceError(path, f"its config {config_path} could not be read ({exc})") from None
    try:
        config = json.loads(raw)
        speakers = int(config["num_speakers"])
        int(config["audio"]["sample_rate"])
        config["espeak"]["voice"]
        if not isinstance(config["phoneme_id_map"], dict) or speakers < 1:
            raise ValueError("phoneme_id_map must be a mapping and num_speakers at least 1")
    except (ValueError, KeyError, TypeError) as exc:
        raise PiperVoiceError(
            path,
            f"its config {config_path.name} is not a Piper voice config (JSON with num_speakers, "
            f"audio.sample_rate, espeak.voice and phoneme_id_map; {type(exc).__name__}: {exc})",
        ) from None
    if config.get("phoneme_type", "espeak") not in ("espeak", "text"):
        raise PiperVoiceError(
            path,
            f"its phoneme_type {config['phoneme_type']!r} needs extra packages; use an espeak-based voice",
        )
    return config, raw


def _speaker_names(config: dict[str, Any]) -> tuple[str, ...]:
    names = [str(i) for i in range(int(config["num_speakers"]))]
    id_map = config.get("speaker_id_map") or {}
    if isinstance(id_map, dict):
        for name, index in id_map.items():
            if isinstance(index, int) and 0 <= index < len(names):
                names[index] = str(name)
    return tuple(names)


@functools.cache
def _assets(path: Path) -> tuple[bytes, Any]:
    """(model bytes, parsed PiperConfig) of a voice, read once per process."""
    _piper()
    from piper.config import PiperConfig

    config, _ = _read_config(path)
    return path.read_bytes(), PiperConfig.from_dict(config)


def _session(onnxruntime: Any, model: bytes, seed: int) -> Any:
    with _lock:  # set_seed is process-wide: it must seed this session and no other
        onnxruntime.set_seed(seed)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def synthesize(
    text: str,
    voice: str,
    length_scale: float = 1.0,
    noise_scale: float = 0.667,
    noise_w: float = 0.8,
    seed: int = 0,
) -> np.ndarray:
    """Speak `text` with a Piper speaker (`PiperVoiceFile.voice`): float32 mono at the device sample rate.

    `length_scale` above 1 speaks slower; `noise_scale` and `noise_w` vary the voice and the timing.
    Trimmed to the speech with about 50 ms of silence either side; the same arguments give the same
    samples. Raises ValueError for empty text or no audio.
    """
    if not text.strip():
        raise ValueError("nothing to synthesise: the text is empty")
    onnxruntime, piper = _piper()
    path, speaker = parse_voice(voice)
    model, config = _assets(path)
    speaker_voice = piper.PiperVoice(session=_session(onnxruntime, model, seed), config=config)
    settings = piper.SynthesisConfig(
        speaker_id=speaker if config.num_speakers > 1 else None,
        length_scale=length_scale,
        noise_scale=noise_scale,
        noise_w_scale=noise_w,
    )
    chunks = [chunk.audio_float_array for chunk in speaker_voice.synthesize(text, settings)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not audio.any():
        raise ValueError(f"Piper produced no audio for {text!r} ({voice})")
    samples = resample(audio.astype(np.float32), config.sample_rate, SAMPLE_RATE_HZ)
    return np.clip(trim_silence(samples), -1.0, 1.0).astype(np.float32, copy=False)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_voice(path: str | Path) -> PiperVoiceFile:
    """Check a Piper voice file (its config, its model's inputs, one word spoken by every speaker id it
    would be asked for) and describe it; PiperVoiceError (one paragraph) when it is not a usable voice."""
    onnxruntime, _ = _piper()
    given = Path(path).expanduser()
    model_path = given.absolute()
    if not model_path.is_file():
        problem = "it is a folder" if model_path.is_dir() else "no such file"
        raise PiperVoiceError(given, problem)
    if model_path.suffix != ".onnx":
        raise PiperVoiceError(given, "its name does not end in .onnx")
    config, raw_config = _read_config(model_path)
    model = model_path.read_bytes()
    try:
        session = _session(onnxruntime, model, 0)
    except Exception as exc:  # ONNX Runtime raises its own exception types for a file it cannot read
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PiperVoiceError(given, f"ONNX Runtime cannot load it as a model ({first})") from None
    inputs = sorted(i.name for i in session.get_inputs())
    speakers = _speaker_names(config)
    wanted = sorted(INPUTS + (("sid",) if len(speakers) > 1 else ()))
    if inputs != wanted:
        raise PiperVoiceError(
            given,
            f"its model takes the inputs {inputs}, where a Piper voice with {len(speakers)} speaker(s), as "
            f"its config says, takes {wanted}",
        )
    voice = PiperVoiceFile(
        model_path, speakers, int(config["audio"]["sample_rate"]), _sha256(model), _sha256(raw_config)
    )
    try:
        synthesize(_TRIAL_TEXT, voice.voice(len(speakers) - 1))
    except Exception as exc:  # a config that does not belong to this model fails inside ONNX Runtime
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PiperVoiceError(given, f"it could not speak a test word ({first})") from None
    return voice
