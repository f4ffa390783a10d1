"""Offline speech synthesis with libespeak-ng (shipped by the espeakng-loader wheel), through ctypes.

No root, no network, no subprocess: the library and its voice data come from the wheel.

Determinism: libespeak-ng keeps synthesis state in C static variables that no API call resets
(pitch-flutter phase, gain control, roughness counter, libc `rand()` for breath noise), so two
identical calls into one loaded copy give different samples. Every synthesis therefore runs in a
fresh private copy of the library, loaded from memory (memfd) and unloaded afterwards, with the
random generators seeded: the same call gives the same samples in any process, at about 5 ms extra
per call. The library image is read once per process.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import functools
import importlib.metadata
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mww.device.audio import resample
from mww.device.constants import SAMPLE_RATE_HZ
from mww.errors import MwwError

# espeak-ng API values (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PHONEMES_ASCII = 0

RATE_LIMITS_WPM = (80, 450)
"""Speaking rates espeak-ng accepts, in words per minute."""
PITCH_LIMITS = (0, 100)
"""Pitch and pitch-range parameter bounds (espeak's 0-100 scale)."""

EXCLUDED_LANGUAGE_VOICES = frozenset({"en-shaw"})
"""English voices not used: en-shaw reads the Shavian alphabet, not Latin-script English."""

_TRIM_PAD_S = 0.05
_TRIM_FRAME_S = 0.005
_TRIM_RELATIVE_LEVEL = 0.02  # frames quieter than this fraction of the peak count as silence
_RAND_SEED = 1

_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_chunks: list[np.ndarray] = []


class TTSUnavailableError(MwwError, RuntimeError):
    """libespeak-ng or its voice data could not be loaded."""


class _Voice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


def _collect_samples(wav: ctypes._Pointer, count: int, _events: int | None) -> int:
    if wav and count > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
    return 0


_callback = _CALLBACK_TYPE(_collect_samples)


@functools.cache
def _library_files() -> tuple[bytes, Path, Path]:
    """(library image, library path, voice data folder), read once per process."""
    hint = (
        "Speech synthesis needs libespeak-ng from the 'espeakng-loader' package "
        "(pip install espeakng-loader); it needs no system package, root or network."
    )
    try:
        import espeakng_loader  # optional dependency, imported on first use
    except ImportError as exc:
        raise TTSUnavailableError(f"The espeakng-loader package is not installed. {hint}") from exc
    try:
        library = Path(espeakng_loader.get_library_path())
        data = Path(espeakng_loader.get_data_path())
        image = library.read_bytes()
    except (OSError, RuntimeError) as exc:
        raise TTSUnavailableError(f"libespeak-ng or its voice data is missing ({exc}). {hint}") from exc
    if not (data / "phontab").is_file():
        raise TTSUnavailableError(f"The espeak-ng voice data in {data} is incomplete (no phontab). {hint}")
    return image, library, data


def _open_library(image: bytes, fallback: Path) -> ctypes.CDLL:
    """A freshly loaded, private copy of the library (its C statics at their initial values)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("libespeak-ng")
        try:
            view = memoryview(image)
            while view:
                view = view[os.write(fd, view) :]
            return ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_LOCAL)
        except OSError:
            pass  # e.g. memfd execution forbidden: load the wheel's file instead
        finally:
            os.close(fd)
    return ctypes.CDLL(str(fallback), mode=os.RTLD_LOCAL)


def _close_library(lib: ctypes.CDLL) -> None:
    if hasattr(_ctypes, "dlclose"):
        _ctypes.dlclose(lib._handle)
    else:  # Windows
        _ctypes.FreeLibrary(lib._handle)


@contextlib.contextmanager
def _espeak() -> Iterator[tuple[ctypes.CDLL, int]]:
    """Load and initialise one private libespeak-ng, yield it with its sample rate, then unload it.

    Callers hold `_lock`: the synthesis callback collects into one module-level list.
    """
    image, library, data = _library_files()
    try:
        lib = _open_library(image, library)
    except OSError as exc:
        raise TTSUnavailableError(f"libespeak-ng ({library}) could not be loaded: {exc}") from exc
    try:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise TTSUnavailableError(f"libespeak-ng could not initialise with the voice data in {data}.")
        try:
            lib.espeak_SetSynthCallback(_callback)
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_void_p,
                ctypes.c_void_p,
            ]
            lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            yield lib, rate
        finally:
            lib.espeak_Terminate()
    finally:
        _close_library(lib)


def _seed_random(lib: ctypes.CDLL) -> None:
    lib.espeak_ng_SetRandSeed(_RAND_SEED)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).srand(_RAND_SEED)  # breath noise uses libc rand()


def _variant_names(data: Path) -> set[str]:
    folder = data / "voices" / "!v"
    return {p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()


def _select_voice(lib: ctypes.CDLL, voice: str, data: Path) -> None:
    language, _, variant = voice.partition("+")
    if variant and variant not in _variant_names(data):
        raise ValueError(f"unknown espeak voice variant {variant!r} in {voice!r}; see list_english_voices()")
    if not language or lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"unknown espeak voice {voice!r}; see list_english_voices()")


def _check_range(name: str, value: int, limits: tuple[int, int]) -> None:
    if not limits[0] <= value <= limits[1]:
        raise ValueError(f"{name} must be within {limits[0]}..{limits[1]}, got {value}")


def trim_silence(samples: np.ndarray, rate: int = SAMPLE_RATE_HZ, pad_s: float = _TRIM_PAD_S) -> np.ndarray:
    """Cut leading and trailing near-silence (below 2 % of the peak), keeping about `pad_s` either side."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        return samples
    frame = max(1, int(rate * _TRIM_FRAME_S))
    loud = np.flatnonzero(np.abs(samples) >= peak * _TRIM_RELATIVE_LEVEL)
    pad = int(rate * pad_s)
    start = max(0, (int(loud[0]) // frame) * frame - pad)
    end = min(samples.size, (int(loud[-1]) // frame + 1) * frame + pad)
    return samples[start:end]


def synthesize(
    text: str, voice: str, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50
) -> np.ndarray:
    """Speak `text` with an espeak voice such as "en-us+f3": float32 mono at the device sample rate.

    The result is trimmed to the speech with about 50 ms of silence either side and is the same,
    sample for sample, for the same arguments. Raises ValueError for empty text, an unknown voice
    or out-of-range parameters, TTSUnavailableError when libespeak-ng cannot be loaded.
    """
    if not text.strip():
        raise ValueError("nothing to synthesise: the text is empty")
    _check_range("rate_wpm", rate_wpm, RATE_LIMITS_WPM)
    _check_range("pitch", pitch, PITCH_LIMITS)
    _check_range("pitch_range", pitch_range, PITCH_LIMITS)
    data = _library_files()[2]
    encoded = text.encode("utf-8")
    with _lock, _espeak() as (lib, native_rate):
        _select_voice(lib, voice, data)
        lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        _seed_random(lib)
        _chunks.clear()
        status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        pcm = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r} ({voice})")
    if not pcm.any():
        raise ValueError(f"espeak produced no audio for {text!r} ({voice})")
    samples = resample(pcm.astype(np.float32) / 32768.0, native_rate, SAMPLE_RATE_HZ)
    return np.clip(trim_silence(samples), -1.0, 1.0).astype(np.float32, copy=False)


def phonemize(texts: Sequence[str], voice: str = "en-us") -> list[str]:
    """espeak's phoneme transcription (ASCII) of each text, e.g. "hey" -> "h'eI"."""
    data = _library_files()[2]
    out: list[str] = []
    with _lock, _espeak() as (lib, _rate):
        _select_voice(lib, voice, data)
        for text in texts:
            buffer = ctypes.create_string_buffer(text.encode("utf-8"))
            pointer = ctypes.c_void_p(ctypes.addressof(buffer))
            parts: list[str] = []
            while pointer.value:
                result = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_ASCII)
                if result:
                    parts.append(result.decode("utf-8", "replace").strip())
            out.append(" ".join(p for p in parts if p))
    return out


@functools.cache
def _english_voices() -> tuple[str, ...]:
    data = _library_files()[2]
    languages: set[str] = set()
    with _lock, _espeak() as (lib, _rate):
        voices = lib.espeak_ListVoices(None)
        index = 0
        while voices[index]:
            entry = voices[index].contents
            # `languages` is a list of (priority byte, name) pairs; the first name is the voice's language
            language = (entry.languages or b"")[1:].decode("ascii", "replace").lower()
            if language.startswith("en") and language not in EXCLUDED_LANGUAGE_VOICES:
                # select by language name, else by voice file name ("en-gb" is the file "gmw/en")
                file_name = (entry.identifier or b"").decode("ascii", "replace").rsplit("/", 1)[-1].lower()
                for name in (language, file_name):
                    if name and lib.espeak_SetVoiceByName(name.encode()) == 0:
                        languages.add(name)
                        break
            index += 1
    variants = sorted(name for name in _variant_names(data) if name.isprintable() and " " not in name)
    suffixes = ["", *(f"+{variant}" for variant in variants)]
    return tuple(f"{language}{suffix}" for language in sorted(languages) for suffix in suffixes)


def list_english_voices() -> list[str]:
    """Every English voice+variant this library can speak ("en-us", "en-us+f3", "en-gb-x-rp+klatt", ...).

    Language voices come from espeak_ListVoices (all English accents except Shavian); variants are the
    files in the data folder's voices/!v, combined with each accent. Sorted; raises TTSUnavailableError
    when the library cannot be loaded.
    """
    return list(_english_voices())


def package_version() -> str:
    """The installed espeakng-loader version (its library and voices shape every clip); "" if absent."""
    try:
        return importlib.metadata.version("espeakng-loader")
    except importlib.metadata.PackageNotFoundError:
        return ""
