"""Make Detectron2 0.6 importable as published, without its compiled extension or panopticapi, and
with a Pillow that has its security fixes.

Two modules that Detectron2 imports at import time are absent here, and Panoptic-DeepLab inference
never calls into either:
- `detectron2._C`: compiled ops (deformable conv, rotated boxes, ...); the sdist has no C++ sources.
- `panopticapi.utils.rgb2id`: used only by the training dataset mapper; not on the registry.
We register stand-ins for exactly those, and each stand-in raises a clear error if it is ever used,
so nothing silently computes the wrong thing. Detectron2's own files are not edited.

Detectron2 0.6 also reads `PIL.Image.LINEAR` at import time (a default argument in
`detectron2.data.transforms`), a name Pillow 10 removed; the Pillow versions without known
vulnerabilities are all 10 or later. It is restored as the alias of BILINEAR it always was.
"""

import sys
import types


class MissingDependencyError(RuntimeError):
    pass


class _Absent(types.ModuleType):
    """A module whose every attribute is a function that explains why it is not available."""

    def __init__(self, name: str, why: str):
        super().__init__(name)
        self._why = why

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def unavailable(*_args, **_kwargs):
            raise MissingDependencyError(f"{self.__name__}.{attr} was called, but {self._why}")

        return unavailable


def install() -> None:
    """Idempotent; call before the first `import detectron2...`."""
    import detectron2
    from PIL import Image

    if not hasattr(Image, "LINEAR"):
        setattr(Image, "LINEAR", Image.Resampling.BILINEAR)  # noqa: B010 (Pillow 10 removed the name; it is not in its stubs)

    if not hasattr(detectron2, "_C") and "detectron2._C" not in sys.modules:
        c_ext = _Absent(
            "detectron2._C",
            "Detectron2's compiled extension is not installed (Panoptic-DeepLab inference does not need it).",
        )
        sys.modules["detectron2._C"] = c_ext
        detectron2._C = c_ext
    if "panopticapi" not in sys.modules:
        try:
            import panopticapi.utils  # noqa: F401  (a real install wins)
        except ImportError:
            why = "panopticapi is not installed (only Detectron2's training data mapper needs it)."
            pkg = _Absent("panopticapi", why)
            pkg.__path__ = []
            sys.modules["panopticapi"] = pkg
            sys.modules["panopticapi.utils"] = utils = _Absent("panopticapi.utils", why)
            setattr(pkg, "utils", utils)  # noqa: B010 (a submodule attribute, as the import system sets it)
