"""Tenstorrent targets as data: compute grid, L1 per core, DRAM. Chosen by name (`--target`).

Sources (ttnn 0.81.1 wheel data files, read offline: ttnn/tt_metal/soc_descriptors/):
- L1 per Tensix core: soc descriptors `worker_l1_size` (blackhole_140_arch.yaml 1572864 B,
  wormhole_b0_80_arch.yaml 1499136 B).
- Allocatable L1 per core: the L1 bank of real ttnn's allocator on the mock device,
  `ttnn.get_memory_view(device, ttnn.BufferType.L1).total_bytes_per_bank` with `l1_small_size=0`
  (Blackhole 1461120 B, Wormhole 1393312 B; tests/test_ttnn_mock.py reads them again). The bank
  ends at the top of L1 and circular buffers start at its bottom; L1_SMALL is carved from its top.
- Compute grid: core descriptors `compute_with_storage_grid_range` (Blackhole unharvested with
  tensix dispatch 13x10; Wormhole n150 8x8). `blackhole-20` is the 5x4 sub-grid the hand-written
  tt-metal Panoptic-DeepLab was tuned on.
- DRAM size: soc descriptors (Blackhole 8 banks of 4278190080 B; Wormhole 12 views of 1 GiB).
- DRAM bandwidth, clock: vendor product specs (Blackhole p150: 512 GB/s GDDR6, 1.35 GHz AI clock;
  Wormhole n150: 288 GB/s GDDR6, 1.0 GHz).
- NoC width: one 512-bit flit per cycle per NoC on Blackhole, 256-bit on Wormhole
  (tt-isa-documentation BlackholeA0/NoC/README.md, "Performance" and the Wormhole comparison tip);
  each Tensix core has two NoCs.
- DRAM bytes one core can move per cycle: Blackhole 33, Wormhole 22 (single-core ideal DRAM read,
  tenstorrent/tt-low-level-documentation data_movement_doc/general/ideal_performance.md, via
  docs/research/handwritten-pdl-and-cost-constants.md section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from converter.errors import UserError

TILE = 32  # tile height/width in elements (ttnn.TILE_SIZE)
DEFAULT_L1_SMALL_SIZE = 32768  # bytes reserved for L1_SMALL (conv/pool config tensors, halo state)
# Held back from the plannable L1 for allocator fragmentation and ttnn's small untracked buffers.
L1_SAFETY_MARGIN = 65536


@dataclass(frozen=True)
class Target:
    name: str
    arch: str  # "blackhole" | "wormhole_b0"
    grid: tuple[int, int]  # compute grid (x, y)
    l1_bytes_per_core: int  # physical L1 per Tensix core
    l1_unreserved_per_core: int  # the L1 bank ttnn's allocator hands out per core (before l1_small)
    dram_bytes: int
    dram_banks: int
    dram_bw_gbs: float  # GB/s, whole chip
    clock_ghz: float
    l1_alignment: int
    dram_alignment: int
    mock_cluster: str = "blackhole-p150"  # runtime/mock_cluster/<name>.yaml: the chip ttnn mocks
    grid_override: str | None = None  # TT_METAL_CORE_GRID_OVERRIDE_TODEPRECATE ("x-1,y-1") for the grid
    noc_bytes_per_cycle: int = 64  # per NoC, per core (cost model)
    dram_bytes_per_cycle_per_core: int = 33  # what one core's reads pull from DRAM (cost model)
    mesh: tuple[int, int] = (1, 1)  # chips (rows, cols) of a ttnn MeshDevice; plans are per chip

    @property
    def num_chips(self) -> int:
        return self.mesh[0] * self.mesh[1]

    @property
    def num_cores(self) -> int:
        return self.grid[0] * self.grid[1]

    def l1_budget(self, l1_small_size: int = DEFAULT_L1_SMALL_SIZE) -> int:
        """Per-core L1 bytes the planner may fill: unreserved - L1_SMALL - safety margin."""
        return self.l1_unreserved_per_core - l1_small_size - L1_SAFETY_MARGIN


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "blackhole-20",
            "blackhole",
            (5, 4),
            1572864,
            1461120,
            8 * 4278190080,
            8,
            512.0,
            1.35,
            16,
            64,
            grid_override="4,3",
        ),
        Target(
            "blackhole-p150",
            "blackhole",
            (11, 10),
            1572864,
            1461120,
            8 * 4278190080,
            8,
            512.0,
            1.35,
            16,
            64,
            grid_override="10,9",
        ),
        Target(
            "wormhole-n150",
            "wormhole_b0",
            (8, 8),
            1499136,
            1393312,
            12 * 2**30,
            12,
            288.0,
            1.0,
            16,
            32,
            mock_cluster="wormhole-n150",
            noc_bytes_per_cycle=32,
            dram_bytes_per_cycle_per_core=22,
        ),
    )
}
# Meshes for data parallelism: every chip runs the single-chip program of its chip target on its
# share of the batch (runtime/mesh.py). The Wormhole mock descriptors harvest one row per chip, so
# that ttnn's mock validator (which assumes worker dispatch) sees the 8x8 grid a real chip has.
for _name, _chip, _mesh, _cluster in (
    ("n300", "wormhole-n150", (1, 2), "wormhole-n300"),
    ("t3k", "wormhole-n150", (2, 4), "wormhole-t3k"),
    ("quietbox-4xp150", "blackhole-p150", (1, 4), "blackhole-4xp150"),
    ("p300", "blackhole-p150", (1, 2), "blackhole-p300"),
):
    TARGETS[_name] = replace(TARGETS[_chip], name=_name, mesh=_mesh, mock_cluster=_cluster)
DEFAULT_TARGET = "blackhole-20"


def unbounded_l1(target: Target) -> Target:
    """`target` with L1 that never limits a plan: for costing a measured program that a later ttnn fits
    and ttnn 0.81.1's circular buffers would not (benchmarks/measured/states.yaml `l1: unbounded`)."""
    return replace(target, l1_bytes_per_core=1 << 26, l1_unreserved_per_core=1 << 26)


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise UserError(f"unknown target {name!r}: choose one of {', '.join(TARGETS)}") from None


# One input pixel's share of the largest tensors the family's programs keep in DRAM at once, in bf16:
# the full-resolution logits' classes (19 for Cityscapes) and a stride-4 map's 16 values per pixel
# (256 channels / 16), as an op's input and output.
ACTIVATION_BYTES_PER_PIXEL = 64


def check_fits_dram(target: Target, input_size: tuple[int, int], batch: int) -> None:
    """A UserError, before anything is allocated, if one forward's activations cannot fit the chip's DRAM."""
    need = batch * input_size[0] * input_size[1] * ACTIVATION_BYTES_PER_PIXEL
    if need > target.dram_bytes:
        batch_note = f"a batch of {batch} x " if batch > 1 else ""
        raise UserError(
            f"{batch_note}{input_size[0]}x{input_size[1]} needs about {need / 2**30:.0f} GiB of activations, more "
            f"than {target.name}'s {target.dram_bytes / 2**30:.0f} GiB of DRAM; use a smaller size or batch"
        )
