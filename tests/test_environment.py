"""The TensorFlow environment must not carry PyTorch, and the base modules must stay light."""

import importlib.util
import subprocess
import sys


def test_torch_is_not_installed_here():
    assert importlib.util.find_spec("torch") is None


def test_base_modules_do_not_import_tensorflow(tmp_path):
    code = (
        "import sys, mww.config.load, mww.data.ingest, mww.device.features, mww.data.featurize, "
        "mww.data.prepare; "
        "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "ok"


def test_no_top_level_src_or_config_package_is_installed(tmp_path):
    code = (
        "import importlib.util as u; "
        "print(u.find_spec('src') is None, u.find_spec('config') is None, "
        "u.find_spec('mww.presets') is not None)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["True", "True", "True"]
