"""The environment the project builds holds every real dependency in one process."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runtime.ttnn_host import import_ttnn, mock_cluster_path, tt_device_present

ROOT = Path(__file__).resolve().parents[1]


def test_python_and_pins():
    from importlib.metadata import version

    assert sys.version_info[:2] == (3, 12)
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name in ("torch", "ttnn", "numpy", "jinja2", "Pillow"):
        assert version(name) == pins[name], name


def test_ttnn_host_mode_bfloat8_b_round_trip():
    ttnn = import_ttnn()
    if not tt_device_present():
        import os

        assert os.environ["TT_METAL_MOCK_CLUSTER_DESC_PATH"] == mock_cluster_path()
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    t = ttnn.from_torch(x, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT)
    assert t.dtype == ttnn.bfloat8_b and t.layout == ttnn.TILE_LAYOUT
    y = ttnn.to_torch(t).float()
    assert y.shape == x.shape
    # bfloat8_b keeps 7 mantissa bits against a shared exponent per 16 values: small but nonzero error.
    err = (x - y).abs().max().item()
    assert 0 < err < 0.1


def test_detectron2_panoptic_deeplab_imports_in_a_fresh_process():
    code = (
        "import converter.detectron2_compat as c; c.install();"
        "from runtime.ttnn_host import import_ttnn; import_ttnn();"
        "import detectron2.projects.panoptic_deeplab as p; print(p.PanopticDeepLab.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PanopticDeepLab"


def test_compat_stand_ins_fail_loudly_when_called():
    import converter.detectron2_compat as compat

    compat.install()
    import panopticapi.utils
    from detectron2 import _C

    with pytest.raises(compat.MissingDependencyError, match="panopticapi is not installed"):
        panopticapi.utils.rgb2id(None)
    with pytest.raises(compat.MissingDependencyError, match="compiled extension"):
        _C.deform_conv_forward()
