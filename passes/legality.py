"""ANALYSIS: configurations real ttnn 0.81.1 rejects for non-conv ops, as pure functions.

Each function returns ttnn's reason (a short message) when ttnn would reject the configuration, or
None. Checked against real ttnn on mock devices by tests/test_l1_model_ops.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operand:
    """What ttnn's validation sees of one input tensor."""

    layout: str  # TILE | ROW_MAJOR
    dtype: str
    sharded: bool


def concat_illegal(inputs: list[Operand]) -> str | None:
    """ttnn.concat (concat_device_operation.cpp validate): every input must share the first's dtype,
    either all are sharded or none is, and sharded inputs must share one layout (interleaved inputs
    of mixed layouts are converted by ttnn first, measured). Interleaved concats of 3+ inputs were
    seen to accept mixed dtypes; the dtype rule is kept for them too (avoiding it is always safe)."""
    first = inputs[0]
    for x in inputs[1:]:
        if x.layout != first.layout and first.sharded:
            return "All Tensors should have same layouts"
        if x.dtype != first.dtype:
            return "All Tensors should have same dtypes"
        if x.sharded != first.sharded:
            return "All tensors must be sharded or all must be interleaved"
    return None


def upsample_illegal(*, mode: str, input_cores: int | None, output_cores: int | None) -> str | None:
    """ttnn.upsample: a sharded nearest upsample writes on its input's cores (cores None: interleaved)."""
    if mode == "nearest" and input_cores is not None and output_cores is not None and input_cores != output_cores:
        return f"Output tensor should have same number of cores {output_cores} as input tensor {input_cores}"
    return None
