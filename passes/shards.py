"""ANALYSIS: the device 2-D view of activations, shard shapes, and per-core bytes of a Placement.

On the device every activation is NHWC flattened to [1, 1, N*H*W, C]: `rows` = N*H*W, `cols` = C.
Shapes follow ttnn's sharded memory configs: rows are split in whole tiles, channels padded to
32 per core (TILE layout), so bytes here are the padded bytes ttnn allocates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from converter.ir import Node, TensorInfo
from hardware.targets import TILE, Target
from passes.cb_model import TILE_BYTES, cdiv, round_up
from passes.plan import ROW_MAJOR, Buffer, MemoryLayout, Placement


def rows_cols(info: TensorInfo) -> tuple[int, int]:
    n, c, h, w = info.shape
    return n * h * w, c


def cores_with_padding(ntiles: int, max_cores: int) -> int:
    """Most cores (<= max) over which `ntiles` rows of tiles split with no empty core (ttnn's
    find_closest_largest_divisor_with_num_padding)."""
    for n in range(min(max_cores, ntiles), 0, -1):
        if cdiv(ntiles, n) * (n - 1) < ntiles:
            return n
    return 1


def largest_divisor(value: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(value, limit)) + 1) if value % d == 0)


def shard_shape(layout: str, rows: int, cols: int, grid: tuple[int, int], num_cores: int) -> tuple[int, int]:
    if layout == "HEIGHT_SHARDED":
        return cdiv(cdiv(rows, TILE), num_cores) * TILE, round_up(cols, TILE)
    if layout == "BLOCK_SHARDED":
        return cdiv(cdiv(rows, TILE), grid[1]) * TILE, round_up(cols, TILE * grid[0]) // grid[0]
    if layout == "WIDTH_SHARDED":
        return round_up(rows, TILE), round_up(cols, TILE * num_cores) // num_cores
    raise ValueError(layout)


def height_placement(rows: int, cols: int, target: Target) -> Placement:
    """The default L1 placement of an activation: height sharded over as many cores as fit."""
    n = cores_with_padding(cdiv(rows, TILE), target.num_cores)
    return Placement(
        Buffer.L1,
        MemoryLayout.HEIGHT_SHARDED,
        target.grid,
        n,
        shard_shape("HEIGHT_SHARDED", rows, cols, target.grid, n),
    )


def placement_like(p: Placement, rows: int, cols: int) -> Placement:
    """The same sharding as `p` for a tensor of another shape (e.g. an eltwise output)."""
    if not p.sharded:
        return p
    assert p.grid is not None and p.num_cores is not None, "a sharded placement names its cores"
    return Placement(p.buffer, p.layout, p.grid, p.num_cores, shard_shape(p.layout, rows, cols, p.grid, p.num_cores))


def _bytes(elements: int, dtype: str) -> int:
    return cdiv(elements * TILE_BYTES[dtype], TILE * TILE)


def tensor_bytes(rows: int, cols: int, dtype: str) -> int:
    """Whole-tensor bytes in TILE layout."""
    return _bytes(round_up(rows, TILE) * round_up(cols, TILE), dtype)


def l1_bytes_per_core(p: Placement, rows: int, cols: int, dtype: str, target: Target) -> int:
    """L1 one core holds for a tensor at placement `p` (0 in DRAM)."""
    if p.buffer == "DRAM":
        return 0
    if p.sharded:
        assert p.shard_shape is not None, "a sharded placement has a shard shape"
        return _bytes(p.shard_shape[0] * p.shard_shape[1], dtype)
    # interleaved: tile pages round-robin over the L1 banks (conservatively: the target's cores)
    pages = cdiv(rows, TILE) * cdiv(cols, TILE)
    return cdiv(pages, target.num_cores) * TILE_BYTES[dtype]


def physical(p: Placement, cols: int, layout: str) -> Placement:
    """`p` for a tensor of `cols` channels in `layout`: height shards are `cols` wide in ROW_MAJOR
    (the physical width ttnn checks them against) and whole tiles wide in TILE."""
    if not p.sharded or p.layout != "HEIGHT_SHARDED":
        return p
    width = cols if layout == ROW_MAJOR else round_up(cols, TILE)
    assert p.shard_shape is not None, "a sharded placement has a shard shape"
    return p if p.shard_shape[1] == width else dataclasses.replace(p, shard_shape=(p.shard_shape[0], width))


@dataclass(frozen=True)
class ConvShape:
    batch: int
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, node: Node, input_shape: tuple[int, ...]) -> ConvShape:
        a = node.attrs
        return cls(
            input_shape[0],
            (input_shape[2], input_shape[3]),
            (node.out.shape[2], node.out.shape[3]),
            a["in_channels"],
            a["out_channels"],
            tuple(a["kernel_size"]),
            tuple(a["stride"]),
            tuple(a["padding"]),
            tuple(a["dilation"]),
            a["groups"],
        )

    def channel_part(self, k: int) -> ConvShape:
        """One of `k` partial convs over input-channel groups (passes/conv_sharding.py): a plain conv's
        part reads Cin/k channels into every output channel (the parts are summed); a grouped conv's
        part holds groups/k whole groups, with their own output channels (the parts are concatenated)."""
        if self.groups == 1:
            return dataclasses.replace(self, in_channels=self.in_channels // k)
        return dataclasses.replace(
            self, in_channels=self.in_channels // k, out_channels=self.out_channels // k, groups=self.groups // k
        )

    @property
    def in_rows(self) -> int:
        return self.batch * self.input_hw[0] * self.input_hw[1]

    @property
    def out_rows(self) -> int:
        return self.batch * self.output_hw[0] * self.output_hw[1]

    def geometry(self) -> dict:
        return dict(
            batch=self.batch,
            input_hw=self.input_hw,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
        )


def staged_input_bytes(shard_rows: int, shard_cols: int, dtype: str) -> int:
    """A conv's input shard as ttnn stages it in L1 (a resharded temporary, a DRAM slice): row-major,
    so bfloat8_b arrives unpacked to 2-byte elements."""
    return shard_rows * shard_cols * (4 if dtype == "float32" else 2)
