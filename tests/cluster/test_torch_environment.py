"""Runs in the PyTorch environment (.venv-torch): what speaker clustering builds on."""

import importlib.util
import subprocess
import sys


def test_tensorflow_is_not_installed_here():
    assert importlib.util.find_spec("tensorflow") is None


def test_speechbrain_and_torch_import_on_cpu():
    import speechbrain  # noqa: F401 - imports torchaudio too (without its compiled ops)
    import torch

    x = torch.randn(4, 8)
    assert torch.allclose(x @ torch.eye(8), x)


def test_project_base_modules_import_without_tensorflow(tmp_path):
    code = (
        "import sys, mww.config.load, mww.data.ingest, mww.device.audio, mww.atomic; "
        "assert 'tensorflow' not in sys.modules; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "ok"
