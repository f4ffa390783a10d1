"""Speaker embeddings with SpeechBrain's ECAPA-TDNN, batched and cached by file content.

Runs in the PyTorch environment (.venv-torch) only; torch and SpeechBrain are imported when a
model is loaded, never at import time, and TensorFlow is never imported.

Model sources (`speaker_clustering.embedding_model`, or `--model-source`):
  * a model id on the Hugging Face hub, like the default "speechbrain/spkrec-ecapa-voxceleb".
    The local Hugging Face cache is tried first (no network); only when the model is not cached
    is it downloaded (not at all when HF_HUB_OFFLINE=1 is set).
  * a local folder in SpeechBrain's format (`hyperparams.yaml` with `modules` and `pretrainer`,
    plus the checkpoint files it names, e.g. `embedding_model.ckpt`): a copy of the hub folder,
    for machines without network. The folder is loaded by the same `EncoderClassifier.from_hparams`
    call; the yaml's `pretrained_path` is pointed at the folder and nothing is linked or copied.

Cache: `<cache_dir>/<model fingerprint>/shard-*.npz`, each shard holding the SHA-256 of file contents
and their embeddings. The fingerprint is a hash of every weight and buffer of the modules that make
embeddings, so a different model never reuses embeddings, and a moved file never needs a new one.
Audio longer than `MAX_EMBED_SECONDS` is embedded from its middle `MAX_EMBED_SECONDS`.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from mww.atomic import atomic_write_bytes
from mww.device.audio import AudioError, load_audio
from mww.device.constants import SAMPLE_RATE_HZ
from mww.errors import MwwError

DEFAULT_MODEL = "speechbrain/spkrec-ecapa-voxceleb"
MAX_EMBED_SECONDS = 10.0
MIN_EMBED_SAMPLES = SAMPLE_RATE_HZ // 10  # shorter clips are zero-padded to 0.1 s
CACHE_FLUSH_EVERY = 2000  # new embeddings written to disk at least this often
_DECODE_WINDOW = 8  # batches decoded at once and sorted by length, to pad less


class EmbeddingError(MwwError):
    """A model that cannot be loaded or used, explained in one paragraph."""


class Embedder(Protocol):
    """What the clustering needs from a speaker model."""

    name: str
    fingerprint: str

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (len(waveforms), dim) of 16 kHz mono float32 waveforms."""
        ...


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_local_source(source: str) -> bool:
    """True when `source` names a folder (existing, or written like a path) rather than a hub id."""
    if Path(source).expanduser().is_dir():
        return True
    return source.startswith(("/", "./", "../", "~", ".\\", "..\\")) or (os.sep != "/" and os.sep in source)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


class SpeechBrainEmbedder:
    """A SpeechBrain `EncoderClassifier` (ECAPA-TDNN) loaded from a hub id or a local folder."""

    def __init__(self, source: str, device: str = "cpu") -> None:
        self.name = source
        self.device = device
        self.classifier = load_encoder(source, device)
        self.fingerprint = model_fingerprint(self.classifier)

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (len(waveforms), dim), one forward pass over a zero-padded batch."""
        import torch

        longest = max(w.size for w in waveforms)
        batch = np.zeros((len(waveforms), longest), dtype=np.float32)
        for row, wave in enumerate(waveforms):
            batch[row, : wave.size] = wave
        lengths = torch.tensor([w.size / longest for w in waveforms], dtype=torch.float32)
        with torch.inference_mode():
            out = self.classifier.encode_batch(torch.from_numpy(batch), lengths)
        return out.reshape(len(waveforms), -1).float().cpu().numpy()


def _missing_model_message(source: str, exc: BaseException) -> str:
    return (
        f"The speaker model '{source}' could not be loaded: it is not in the local Hugging Face cache "
        f"and could not be downloaded ({type(exc).__name__}: {_short(exc)}). On a machine without network, "
        f"copy the model folder (hyperparams.yaml and its .ckpt files, e.g. from "
        f"https://huggingface.co/{DEFAULT_MODEL}) to this machine and pass --model-source DIR (or set "
        "speaker_clustering.embedding_model to that folder); otherwise check the model id and your network."
    )


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_encoder(source: str, device: str = "cpu") -> Any:
    """Load a SpeechBrain `EncoderClassifier` from a hub id or a local SpeechBrain folder.

    A local folder is read in place (no symlinks, no copies, no network). A hub id is looked up in
    the local Hugging Face cache first, then downloaded unless HF_HUB_OFFLINE is set.
    Raises EmbeddingError with a one-paragraph message when it cannot be loaded.
    """
    try:
        import torch
        from speechbrain.inference.classifiers import EncoderClassifier
        from speechbrain.utils.fetching import FetchConfig, LocalStrategy
    except ImportError as exc:
        raise EmbeddingError(
            f"Speaker clustering needs PyTorch and SpeechBrain, which this Python cannot import ({exc}). "
            "Run it in the PyTorch environment: `.venv-torch/bin/mww-cluster-analyze ...` (built by "
            "scripts/setup_env.sh from requirements-torch.txt), not in the TensorFlow one."
        ) from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbeddingError(
            f"--device {device} was asked for, but PyTorch sees no CUDA GPU here. Run with --device cpu "
            "(slower, but the same embeddings), or install a CUDA build of torch on a machine with a GPU."
        )
    run_opts = {"device": device}
    if is_local_source(source):
        folder = Path(source).expanduser().resolve()
        if not (folder / "hyperparams.yaml").is_file():
            what = "does not exist" if not folder.exists() else "holds no hyperparams.yaml"
            raise EmbeddingError(
                f"The speaker model folder {folder} {what}. --model-source DIR (or "
                "speaker_clustering.embedding_model) must be a SpeechBrain model folder: hyperparams.yaml "
                f"plus the checkpoint files it names, as in https://huggingface.co/{DEFAULT_MODEL}. "
                "Copy that folder here and pass its path."
            )
        try:
            return EncoderClassifier.from_hparams(
                source=str(folder),
                savedir=None,
                local_strategy=LocalStrategy.NO_LINK,
                fetch_config=FetchConfig(allow_network=False),
                overrides={"pretrained_path": str(folder)},
                overrides_must_match=False,
                run_opts=run_opts,
            )
        except Exception as exc:
            raise EmbeddingError(
                f"The speaker model folder {folder} could not be loaded as a SpeechBrain EncoderClassifier "
                f"({type(exc).__name__}: {_short(exc)}). It needs hyperparams.yaml with 'modules' "
                "(compute_features, mean_var_norm, embedding_model, classifier) and 'pretrainer', and every "
                "checkpoint file that yaml names, in the same folder. Copy the complete model folder again."
            ) from None
    attempts = [False] if _hub_offline() else [False, True]
    error: BaseException | None = None
    for allow_network in attempts:
        try:
            return EncoderClassifier.from_hparams(
                source=source,
                savedir=None,
                local_strategy=LocalStrategy.NO_LINK,
                fetch_config=FetchConfig(allow_network=allow_network),
                run_opts=run_opts,
            )
        except Exception as exc:  # hub, network and file errors come in many types
            error = exc
    assert error is not None
    raise EmbeddingError(_missing_model_message(source, error)) from None


_EMBEDDING_MODULES = ("compute_features", "mean_var_norm", "embedding_model")  # what encode_batch runs


def model_fingerprint(classifier: Any) -> str:
    """SHA-256 (first 20 hex digits) over every weight and buffer of the modules that make embeddings."""
    digest = hashlib.sha256()
    state = {
        f"{name}.{key}": tensor
        for name in _EMBEDDING_MODULES
        if name in classifier.mods
        for key, tensor in classifier.mods[name].state_dict().items()
    }
    for key, tensor in sorted(state.items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{key}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:20]


class EmbeddingCache:
    """Embeddings keyed by file-content SHA-256, stored as shards under `root/<fingerprint>/`."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(root) / fingerprint
        self._known: dict[str, np.ndarray] = {}
        self._pending: dict[str, np.ndarray] = {}
        self._shards = sorted(self.folder.glob("shard-*.npz")) if self.folder.is_dir() else []
        for shard in self._shards:
            try:
                with np.load(shard, allow_pickle=False) as data:
                    for digest, row in zip(data["hashes"], data["embeddings"], strict=True):
                        self._known[str(digest)] = row.astype(np.float32)
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard only costs recomputation

    def __contains__(self, digest: str) -> bool:
        return digest in self._known or digest in self._pending

    def __len__(self) -> int:
        return len(self._known) + len(self._pending)

    def get(self, digest: str) -> np.ndarray:
        """The embedding of a file with this content hash."""
        return self._pending[digest] if digest in self._pending else self._known[digest]

    def add(self, digest: str, embedding: np.ndarray) -> None:
        """Remember one embedding; written to disk by `flush`."""
        self._pending[digest] = np.asarray(embedding, dtype=np.float32)

    def flush(self) -> Path | None:
        """Write pending embeddings as one new shard (atomically); None when nothing is pending."""
        if not self._pending:
            return None
        path = (
            self.folder / f"shard-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{len(self._shards):05d}.npz"
        )
        self._write(path, self._pending)
        self._shards.append(path)
        self._known.update(self._pending)
        self._pending = {}
        return path

    def compact(self, max_shards: int = 8) -> None:
        """Merge the shards into one when there are more than `max_shards`."""
        self.flush()
        if len(self._shards) <= max_shards:
            return
        old = list(self._shards)
        merged = self.folder / f"shard-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-merged.npz"
        self._write(merged, self._known)
        for shard in old:
            if shard != merged:
                shard.unlink(missing_ok=True)
        self._shards = [merged]

    @staticmethod
    def _write(path: Path, rows: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        hashes = np.array(list(rows), dtype="U64")
        embeddings = np.stack(list(rows.values())).astype(np.float32)
        np.savez(buffer, hashes=hashes, embeddings=embeddings)
        atomic_write_bytes(path, buffer.getvalue())


@dataclass
class EmbeddingResult:
    """Embeddings of the usable files (rows in the order of `paths`) and the files left out."""

    paths: list[Path]
    embeddings: np.ndarray
    hashes: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    computed: int = 0
    reused: int = 0


def prepare_waveform(samples: np.ndarray) -> np.ndarray:
    """The part of a clip that is embedded: the middle MAX_EMBED_SECONDS, at least 0.1 s (zero-padded)."""
    limit = int(MAX_EMBED_SECONDS * SAMPLE_RATE_HZ)
    if samples.size > limit:
        start = (samples.size - limit) // 2
        samples = samples[start : start + limit]
    if samples.size < MIN_EMBED_SAMPLES:
        samples = np.pad(samples, (0, MIN_EMBED_SAMPLES - samples.size))
    return np.ascontiguousarray(samples, dtype=np.float32)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _embed_batch(
    embedder: Embedder, batch: Sequence[tuple[str, np.ndarray]]
) -> list[tuple[str, np.ndarray | str]]:
    """(digest, embedding) per clip, or (digest, reason) for a clip the model fails on.

    A batch that fails as a whole is retried clip by clip, so one bad clip costs only itself.
    """
    try:
        vectors = np.asarray(embedder.embed([wave for _, wave in batch]), dtype=np.float32)
    except Exception as exc:
        if len(batch) == 1:
            return [
                (batch[0][0], f"the model failed on this audio ({type(exc).__name__}: {_short(exc, 120)})")
            ]
        return [item for one in batch for item in _embed_batch(embedder, [one])]
    out: list[tuple[str, np.ndarray | str]] = []
    for (digest, _), vector in zip(batch, vectors.reshape(len(batch), -1), strict=True):
        usable = bool(np.all(np.isfinite(vector)) and np.any(vector))
        out.append((digest, vector if usable else "the model gave no usable embedding for this audio"))
    return out


def _hash_files(
    paths: Sequence[Path], progress: bool
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(path, content hash) per readable file, and (path, reason) per file that cannot be read."""
    hashed: list[tuple[Path, str]] = []
    skipped: list[tuple[Path, str]] = []
    for path in tqdm(paths, desc="hashing", unit="file", disable=not progress or len(paths) < 2000):
        try:
            hashed.append((path, file_sha256(path)))
        except OSError as exc:
            skipped.append((path, f"unreadable: {exc.strerror or exc}"))
    return hashed, skipped


def _unknown_contents(
    hashed: Sequence[tuple[Path, str]], cache: EmbeddingCache | None
) -> list[tuple[Path, str]]:
    """One (path, hash) per content that the cache does not hold yet, in the order first seen."""
    todo: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for path, digest in hashed:
        if (cache is None or digest not in cache) and digest not in seen:
            todo.append((path, digest))
            seen.add(digest)
    return todo


def _decoded(
    window: Sequence[tuple[Path, str]],
    loader: Callable[[Path], np.ndarray],
    failed: dict[str, str],
    bar: tqdm,
) -> list[tuple[str, np.ndarray]]:
    """(hash, waveform) per file of `window` that decodes to samples, shortest first; the others go
    to `failed` with the reason."""
    decoded: list[tuple[str, np.ndarray]] = []
    for path, digest in window:
        try:
            samples = loader(path)
        except AudioError as exc:
            failed[digest] = f"unreadable: {exc.detail}"
            bar.update(1)
            continue
        if samples.size == 0:
            failed[digest] = "empty: the file holds no samples"
            bar.update(1)
            continue
        decoded.append((digest, prepare_waveform(samples)))
    decoded.sort(key=lambda item: item[1].size)
    return decoded


def _embed_contents(
    todo: Sequence[tuple[Path, str]],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    batch_size: int,
    progress: bool,
    loader: Callable[[Path], np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
    """Embed the files of `todo`: the new embeddings by hash, the reason per hash that failed, and
    how many clips went to the model. The cache gets every new embedding and is flushed every
    CACHE_FLUSH_EVERY of them and at the end (also when interrupted)."""
    local: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    computed = 0
    since_flush = 0
    bar = tqdm(total=len(todo), desc="embedding", unit="file", disable=not progress)
    try:
        for window in _chunks(todo, batch_size * _DECODE_WINDOW):
            for batch in _chunks(_decoded(window, loader, failed, bar), batch_size):
                for digest, vector in _embed_batch(embedder, batch):
                    if isinstance(vector, str):
                        failed[digest] = vector
                        continue
                    local[digest] = vector
                    if cache is not None:
                        cache.add(digest, vector)
                computed += len(batch)
                since_flush += len(batch)
                bar.update(len(batch))
                if cache is not None and since_flush >= CACHE_FLUSH_EVERY:
                    cache.flush()
                    since_flush = 0
    finally:
        bar.close()
        if cache is not None:
            cache.compact()
    return local, failed, computed


def _result(
    hashed: Sequence[tuple[Path, str]],
    skipped: list[tuple[Path, str]],
    local: dict[str, np.ndarray],
    failed: dict[str, str],
    cache: EmbeddingCache | None,
    computed: int,
) -> EmbeddingResult:
    """The embeddings of the files that have one, in the order hashed (new ones from `local`, the
    rest from the cache); the files whose content failed join `skipped`, sorted by path."""
    ok_paths: list[Path] = []
    ok_hashes: list[str] = []
    rows: list[np.ndarray] = []
    for path, digest in hashed:
        if digest in failed:
            skipped.append((path, failed[digest]))
            continue
        ok_paths.append(path)
        ok_hashes.append(digest)
        rows.append(local[digest] if digest in local else cache.get(digest))  # type: ignore[union-attr]
    dim = rows[0].size if rows else 0
    embeddings = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    skipped.sort(key=lambda item: str(item[0]))
    return EmbeddingResult(
        paths=ok_paths,
        embeddings=embeddings,
        hashes=ok_hashes,
        skipped=skipped,
        computed=computed,
        reused=len(ok_paths) - sum(1 for d in ok_hashes if d in local),
    )


def embed_files(
    paths: Sequence[Path],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    progress: bool = True,
    loader: Callable[[Path], np.ndarray] = load_audio,
) -> EmbeddingResult:
    """Embed every file, reusing `cache` for contents seen before; unreadable files are skipped.

    Files are hashed, the unknown contents decoded `batch_size * 8` at a time, sorted by length
    and embedded `batch_size` at a time. New embeddings are flushed to the cache every
    CACHE_FLUSH_EVERY files and at the end (also when interrupted).
    """
    hashed, skipped = _hash_files(paths, progress)
    todo = _unknown_contents(hashed, cache)
    local, failed, computed = _embed_contents(todo, embedder, cache, batch_size, progress, loader)
    return _result(hashed, skipped, local, failed, cache, computed)
