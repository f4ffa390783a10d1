"""One job per output file, and running them: a job holds everything its file depends on (text, voice,
kind, seed), so the jobs can run in any order, in any number of processes, and give the same bytes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mww.device.audio import write_wav
from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth.sounds import ambient_audio, background_clip, room_impulse_response, speech_clip

BACKGROUND_CLIP_MS = 10_000


@dataclass(frozen=True)
class SpeechJob:
    """A positive, negative or hard-negative clip: `text` said by `voice`, `seconds` long."""

    path: str
    text: str
    voice: str
    seconds: tuple[float, float]
    crop: bool
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        clip = speech_clip(np.random.default_rng(self.seed), self.text, self.voice, self.seconds, self.crop)
        write_wav(root / self.path, clip)
        return clip.size / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class BackgroundJob:
    """A background clip of BACKGROUND_CLIP_MS; babble and mixtures speak `texts` with `voices`."""

    path: str
    kind: str
    voices: tuple[str, ...]
    texts: tuple[str, ...]
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        rng = np.random.default_rng(self.seed)
        n = BACKGROUND_CLIP_MS * SAMPLE_RATE_HZ // 1000
        write_wav(root / self.path, background_clip(rng, self.kind, n, self.voices, self.texts))
        return n / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class RirJob:
    """A room impulse response that decays by 60 dB in `rt60` seconds."""

    path: str
    rt60: float
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        response = room_impulse_response(np.random.default_rng(self.seed), self.rt60)
        write_wav(root / self.path, response)
        return response.size / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class AmbientJob:
    """`seconds` of ambient audio: `texts` said by `voices` over noise."""

    path: str
    seconds: float
    voices: tuple[str, ...]
    texts: tuple[str, ...]
    seed: tuple[int, ...]

    def run(self, root: Path) -> float:
        rng = np.random.default_rng(self.seed)
        n = int(self.seconds * SAMPLE_RATE_HZ)
        write_wav(root / self.path, ambient_audio(rng, n, self.voices, self.texts))
        return n / SAMPLE_RATE_HZ


Job = SpeechJob | BackgroundJob | RirJob | AmbientJob


def _run_job(item: tuple[Job, str]) -> float:
    job, root = item
    return job.run(Path(root))


def default_workers() -> int:
    """The number of cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def run_jobs(jobs: Sequence[Job], root: Path, workers: int, progress: bool) -> None:
    """Write every job's file under `root`, in `workers` spawned processes (in this one for 1)."""
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
