"""How sliding-window ops (conv2d, pools) shard their [1, 1, N*H*W, C] outputs when no memory_config
is given: HEIGHT splits N*H*W over `num_cores` (row-major over the grid), BLOCK splits N*H*W over
grid y and channels over grid x, WIDTH splits channels over all cores. Shards are whole tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.emulator.tensor import TILE
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def layout_name(memory_layout) -> str:
    return memory_layout.name  # "HEIGHT_SHARDED", ...


@dataclass(frozen=True)
class Parallel:
    """A sharding of an [NHW, C] matrix over cores."""

    layout: str  # HEIGHT_SHARDED | BLOCK_SHARDED | WIDTH_SHARDED
    grid: tuple[int, int]  # (x, y) of the core grid
    num_cores: int  # cores used (height sharding may use fewer than x*y)

    def shard_shape(self, nhw: int, channels: int, tile: bool = True) -> tuple[int, int]:
        """Rows are whole tiles; channels are whole tiles in TILE layout, exact in ROW_MAJOR."""

        def width(parts: int) -> int:
            return cdiv(cdiv(channels, TILE), parts) * TILE if tile else cdiv(channels, parts)

        if self.layout == "HEIGHT_SHARDED":
            return cdiv(cdiv(nhw, TILE), self.num_cores) * TILE, width(1)
        if self.layout == "BLOCK_SHARDED":
            return cdiv(cdiv(nhw, TILE), self.grid[1]) * TILE, width(self.grid[0])
        return cdiv(nhw, TILE) * TILE, width(self.num_cores)

    def core_range_set(self):
        if self.layout == "HEIGHT_SHARDED" or self.layout == "WIDTH_SHARDED":
            return tt.num_cores_to_corerangeset(self.num_cores, tt.CoreCoord(*self.grid), True)
        return tt.CoreRangeSet([tt.CoreRange(tt.CoreCoord(0, 0), tt.CoreCoord(self.grid[0] - 1, self.grid[1] - 1))])

    def memory_config(self, nhw: int, channels: int, tile: bool = True):
        shape = list(self.shard_shape(nhw, channels, tile))
        spec = tt.ShardSpec(self.core_range_set(), shape, tt.ShardOrientation.ROW_MAJOR)
        return tt.MemoryConfig(getattr(tt.TensorMemoryLayout, self.layout), tt.BufferType.L1, spec)


def default_parallel(layout: str, grid: tuple[int, int], nhw: int, channels: int) -> Parallel:
    """The grid ttnn would pick on `grid` when nothing is given (as many cores as have work)."""
    cores = grid[0] * grid[1]
    if layout == "HEIGHT_SHARDED":
        ntiles = cdiv(nhw, TILE)
        per_core = cdiv(ntiles, min(cores, ntiles))
        return Parallel(layout, grid, cdiv(ntiles, per_core))
    if layout == "WIDTH_SHARDED":
        ctiles = cdiv(channels, TILE)
        per_core = cdiv(ctiles, min(cores, ctiles))
        return Parallel(layout, grid, cdiv(ctiles, per_core))
    return Parallel(layout, grid, cores)


def parallel_of(memory_config) -> Parallel | None:
    """The sharding an existing sharded tensor has, in the same terms."""
    if not memory_config.is_sharded() or memory_config.shard_spec is None:
        return None
    spec = memory_config.shard_spec
    box = spec.grid.bounding_box()
    grid = (box.end.x - box.start.x + 1, box.end.y - box.start.y + 1)
    return Parallel(layout_name(memory_config.memory_layout), grid, spec.grid.num_cores())


def heuristic_layout(nhw: int, channels: int) -> str:
    """ttnn's rough choice when conv_config.shard_layout is None: tall-and-thin -> height, else block."""
    if channels <= 256 or nhw >= 32 * channels:
        return "HEIGHT_SHARDED"
    return "BLOCK_SHARDED"
