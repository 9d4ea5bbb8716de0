"""Install Detectron2 0.6's Python sources into the current environment, unmodified.

The registry has no installable `detectron2`: the `pb1-detectron2==0.6` sdist holds its Python
sources but not the C++ ones, so `pip install` fails at the extension build. Panoptic-DeepLab needs
none of the compiled ops, so we place the Python packages exactly where the sdist's own setup.py maps
them (`detectron2`, `detectron2.projects.{deeplab,panoptic_deeplab,point_rend}`) and stop there.
The two import-time gaps this leaves (`detectron2._C`, `panopticapi`) are bridged at import time by
converter/detectron2_compat.py, not by editing these files.
"""

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

SDIST = "pb1-detectron2==0.6"
# The mapping of the sdist's setup.py (PROJECTS = {...}).
PROJECTS = {
    "point_rend": "projects/PointRend/point_rend",
    "deeplab": "projects/DeepLab/deeplab",
    "panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}
MARKER = "pdl2ttnn-installed-from.txt"


def main() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    target = site / "detectron2"
    if (target / MARKER).is_file() and (target / MARKER).read_text().strip() == SDIST:
        return
    with tempfile.TemporaryDirectory() as tmp:
        # Metadata preparation of this sdist imports torch, hence no build isolation.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-binary",
                ":all:",
                SDIST,
                "-d",
                tmp,
            ],
            check=True,
        )
        (archive,) = Path(tmp).glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (src,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        staging = site / "detectron2.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(src / "detectron2", staging, ignore=shutil.ignore_patterns("__pycache__"))
        for name, rel in PROJECTS.items():
            shutil.copytree(src / rel, staging / "projects" / name, ignore=shutil.ignore_patterns("__pycache__"))
        (staging / MARKER).write_text(SDIST + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: a half-copied tree never sits under the real name
    print(f"installed Detectron2 sources from {SDIST} into {target}")


if __name__ == "__main__":
    main()
