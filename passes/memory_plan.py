"""TRANSFORM: place every tensor in L1 or DRAM, insert moves and deallocations (OpPlan placement fields).

Walks the program in order with the set of live tensors and where each one currently is:
1. Each op offers placement *modes* in preference order (`_modes`): the placements it wants for its
   inputs and its output placement. E.g. a conv wants its input sharded as conv sharding chose (or
   in DRAM when sliced); bilinear upsample wants a HEIGHT_SHARDED L1 input (ttnn 0.81.1 requires
   it); an add wants both operands sharded alike. Tensor layouts come from passes/layout_plan.py (run before).
2. A mode fits when the op, run at address level (passes/l1_sim.py: ttnn's first-fit
   top-down L1 with every live tensor at its address, the op's moves, layout conversions,
   temporaries, output and circular buffers in the generated code's order), allocates everything
   and its CBs end below the lowest L1 buffer, with a peak (CBs + L1 + L1_SMALL) within the budget.
   When it does not fit: first L1 is compacted (`reallocate_before`: live tensors reallocated to
   the top, highest first), then live tensors the op does not read are spilled to DRAM until it
   fits, farthest next use first (Belady) or, as the alternative, largest first. Among the (mode,
   spill order) pairs that fit, the cheapest by passes/cost_model.py wins: the op with its moves
   and spills, plus the moves the choice forces later (spilled tensors coming back, the output
   moving to where its first reader wants it). Ties go to the earlier mode and to Belady. A conv
   none of whose modes fits falls back to conv sharding's other legal configs (DRAM slicing).
   `l1_peak_per_core` is the simulated peak (the plan report puts real ttnn's beside it).
3. Inputs not where the op wants them are moved (`reshard_inputs`); a move *replaces* the tensor,
   so later readers see the new placement. Graph outputs are written to DRAM; the model input
   arrives DRAM-interleaved; an `output` node moves its head tensor to DRAM if it is not written
   there directly. Each tensor is deallocated after its last reader (`deallocate_after`),
   except what the graph returns.
Activations stay [1, 1, N*H*W, C] throughout: every placement is of that 2-D view.

How the code generator reads a node's plan, in this order (and l1_sim.simulate_op replays it):
  for name in reallocate_before: name = ttnn.reallocate(name);
  for (name, p) in spill_before + reshard_inputs: name = to_memory_config(name, p) (free the old copy);
  for (name, layout) in layout_inputs: a to_layout temporary (the source freed if this is its last use);
  run the op with its output memory config from `output` and its layout from `layout`;
  free the temporaries; for name in deallocate_after: ttnn.deallocate(name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from converter.errors import UserError
from converter.ir import Graph, Node
from converter.ops import Memory, is_conv, is_input, is_output, op_kind
from hardware.targets import DEFAULT_L1_SMALL_SIZE, TILE, Target
from passes import cb_model
from passes.conv_sharding import (
    channel_groups,
    conv_input_placement,
    conv_output_placement,
    legal_configs,
    rank_configs,
)
from passes.cost_model import Operand, op_cost, reshard_cost
from passes.l1_sim import DoesNotFit, L1Sim, TensorState, simulate_op
from passes.overrides import Overrides
from passes.plan import DRAM_INTERLEAVED, L1_INTERLEAVED, OpPlan, Placement, conv_of, plan_of
from passes.shards import ConvShape, height_placement, l1_bytes_per_core, physical, placement_like, rows_cols

DRAM = DRAM_INTERLEAVED
SPILL_ORDERS = ("belady", "largest")


@dataclass
class Trial:
    """A way to run one op that fits: what it spills and reallocates, its simulated peak and the
    address-level state after it."""

    spilled: set[str]
    reallocs: tuple[str, ...]
    peak: int
    sim: L1Sim
    live: dict[str, TensorState]


class PlanError(RuntimeError):
    """The planner met an op it does not know (a compiler bug)."""


@dataclass(frozen=True)
class Mode:
    wants: tuple[Placement | None, ...]  # per input; None = wherever it is
    output: Placement
    why: str
    slices: tuple[str, int] | None = None


class _Planner:
    def __init__(self, graph: Graph, target: Target, budget: int, l1_small_size: int, overrides: Overrides | None):
        self.g, self.t, self.budget, self.overrides = graph, target, budget, overrides
        self.nodes = {n.name: n for n in graph.nodes}
        self.order = {n.name: i for i, n in enumerate(graph.nodes)}
        self.uses: dict[str, list[int]] = {n.name: [] for n in graph.nodes}
        for i, n in enumerate(graph.nodes):
            for x in n.inputs:
                self.uses[x].append(i)
        self.returned = {x for n in graph.nodes if is_output(n) for x in n.inputs}
        self.loc: dict[str, Placement] = {}
        # the same state at address level: L1 free lists and every live tensor's buffer
        self.sim = L1Sim(target, l1_small_size)
        self.live: dict[str, TensorState] = {}
        self.shapes = {n.name: tuple(n.out.shape) for n in graph.nodes}

    # --- sizes -------------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, int]:
        return rows_cols(self.nodes[name].out)

    def dtype(self, name: str) -> str:
        return plan_of(self.nodes[name]).dtype

    def l1(self, name: str, p: Placement) -> int:
        return l1_bytes_per_core(p, *self.shape(name), self.dtype(name), self.t)

    def height(self, name: str) -> Placement:
        return height_placement(*self.shape(name), self.t)

    # --- what each op accepts ------------------------------------------------------------------
    def _modes(self, n: Node) -> list[Mode]:
        recipe = op_kind(n).memory
        if recipe not in _MODES:
            raise PlanError(f"memory planning does not know op {n.op!r} ({n.name}, memory recipe {recipe})")
        rows, cols = rows_cols(n.out)
        return _MODES[recipe](self, n, rows, cols, height_placement(rows, cols, self.t))

    def _conv_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        s = ConvShape.of(n, self.nodes[n.inputs[0]].out.shape)
        c = conv_of(n)
        out = conv_output_placement(n, s)
        p_in = conv_input_placement(n, s)
        modes = [Mode((p_in,), out, f"conv {c.slice_type} {c.shard_layout}")]
        if out.buffer == "L1":
            modes.append(Mode((p_in,), DRAM, "conv output to DRAM"))
        return modes

    def _binary_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        sharded = [p for p in (self.loc[x] for x in n.inputs) if p.buffer == "L1" and p.sharded]
        p = placement_like(sharded[0], rows, cols) if sharded else out_h
        return [Mode((p, p), p, "add on matching shards"), Mode((DRAM, DRAM), DRAM, "add in DRAM")]

    def _unary_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        cur = self.loc[n.inputs[0]]
        return [
            Mode((None,), placement_like(cur, rows, cols), "eltwise in place of its input"),
            Mode((cur,), out_h, "eltwise to L1"),
            Mode((DRAM,), DRAM, "eltwise in DRAM"),
        ]

    def _upsample_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        x = n.inputs[0]
        p_in = self.height(x)
        # on the input's cores, as ttnn writes it (any other spec costs a copy; nearest rejects it)
        out_like = placement_like(p_in, rows, cols)
        if n.attrs["mode"] == "bilinear":  # ttnn 0.81.1: HEIGHT_SHARDED L1 input and a sharded output
            h = self.nodes[x].out.shape[2]
            bands = [k for k in (2, 4, 8, 16, 32, 64) if h % k == 0 and h // k >= 2]
            # a 1-row input (ASPP image pooling) on its one core would leave the whole output there
            spread = [Mode((p_in,), out_h, "bilinear broadcast onto more cores")] if p_in.num_cores == 1 else []
            return [Mode((p_in,), out_like, "bilinear upsample on height shards"), *spread] + [
                Mode(
                    (DRAM,),
                    DRAM,
                    f"bilinear upsample in {k} row bands (its output does not fit L1)",
                    ("ROW_BANDS", k),
                )
                for k in bands
            ]
        return [Mode((p_in,), out_like, "upsample"), Mode((p_in,), DRAM, "upsample, output to DRAM")]

    def _concat_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        return [
            Mode(tuple(self.height(x) for x in n.inputs), out_h, "concat of height shards"),
            Mode(tuple(DRAM for _ in n.inputs), DRAM, "concat in DRAM"),
        ]

    def _pool_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        p_in = self.height(n.inputs[0])
        # on the input's cores: ttnn writes a pool's output there, and copies it to any other spec
        modes = [
            Mode((p_in,), placement_like(p_in, rows, cols), "pool on height shards"),
            Mode((p_in,), DRAM, "pool, output to DRAM"),
        ]
        # ttnn pools take dram_slice_config like convs; a TILE output's width slices are whole tiles
        for kind, most in (("width", cb_model.cdiv(n.out.shape[3], TILE)), ("height", n.out.shape[2])):
            k = 2
            while k <= most:
                modes.append(
                    Mode((DRAM,), DRAM, f"pool DRAM-sliced in {k} {kind} slices", (f"DRAM_SLICE_{kind.upper()}", k))
                )
                k *= 2
        return modes

    def _resample_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        # small tensors (ASPP pooling); its matmuls stream from DRAM
        return [Mode((DRAM,), DRAM, "resample as two matmuls in DRAM")]

    def _global_pool_modes(self, n: Node, rows: int, cols: int, out_h: Placement) -> list[Mode]:
        return [Mode((None,), L1_INTERLEAVED, "global pool to L1"), Mode((DRAM,), DRAM, "global pool in DRAM")]

    # --- one op --------------------------------------------------------------------------------
    def _next_use(self, name: str, i: int) -> int:
        return next((u for u in self.uses[name] if u >= i), len(self.g.nodes))

    def _spill_set(self, i: int, n: Node, mode: Mode, order: str) -> Trial | None:
        """The fewest live tensors the op does not read, spilled in `order`, that make `mode` fit
        (`_trial`, with L1 compaction when it helps); None if it cannot. "belady": farthest next use
        first; "largest": most L1 per core first."""

        def key(x: str) -> tuple[int, str]:
            return (-self._next_use(x, i), x) if order == "belady" else (-self.l1(x, self.loc[x]), x)

        candidates = sorted((x for x, p in self.loc.items() if p.buffer == "L1" and x not in n.inputs), key=key)
        spilled: set[str] = set()
        while True:
            trial = self._trial(i, n, mode, spilled)
            if trial is not None or not candidates:
                return trial
            spilled.add(candidates.pop(0))

    def _physical(self, n: Node, mode: Mode) -> Mode:
        """The mode's placements as shard specs of the tensors' layouts (ROW_MAJOR: unpadded widths)."""
        wants = tuple(
            None if p is None else physical(p, self.live[x].cols, self.live[x].layout)
            for x, p in zip(n.inputs, mode.wants, strict=True)
        )
        return dataclasses.replace(mode, wants=wants, output=physical(mode.output, n.out.shape[1], plan_of(n).layout))

    def _plan_of(self, i: int, n: Node, mode: Mode, spilled: set[str], reallocs: tuple[str, ...] = ()) -> OpPlan:
        spills = tuple((x, DRAM) for x in sorted(spilled, key=lambda x: self.order[x]))
        return dataclasses.replace(
            plan_of(n),
            output=mode.output,
            reshard_inputs=self._moves(n, mode),
            spill_before=spills,
            reallocate_before=reallocs,
            deallocate_after=self._dead(i, n),
            slices=mode.slices,
        )

    def _simulate(self, n: Node, plan: OpPlan, spilled: set[str], reallocs: tuple[str, ...]) -> Trial | None:
        sim, live = self.sim.copy(), dict(self.live)
        try:
            peak = simulate_op(sim, live, dataclasses.replace(n, plan=plan), self.shapes, self.t)
        except DoesNotFit:
            return None
        return Trial(spilled, reallocs, peak, sim, live) if peak <= self.budget else None

    def _trial(self, i: int, n: Node, mode: Mode, spilled: set[str]) -> Trial | None:
        """Simulate the op at address level with `spilled` moved to DRAM; if it does not fit, again
        after compacting L1: every live L1 tensor the op keeps, highest first, reallocated to the top."""
        trial = self._simulate(n, self._plan_of(i, n, mode, spilled), set(spilled), ())
        if trial is not None:
            return trial
        reallocs = self._compaction(spilled)
        if not reallocs:
            return None
        return self._simulate(n, self._plan_of(i, n, mode, spilled, reallocs), set(spilled), reallocs)

    def _compaction(self, spilled: set[str]) -> tuple[str, ...]:
        """The reallocations (in order) that pack the live L1 tensors not in `spilled` against the top."""
        sim = self.sim.copy()
        moved = []
        for x in sorted((x for x in sim.addr if x in self.loc and x not in spilled), key=lambda x: -sim.addr[x]):
            before = sim.addr[x]
            sim.reallocate(x)
            if sim.addr[x] != before:
                moved.append(x)
        return tuple(moved)

    def _dead(self, i: int, n: Node) -> tuple[str, ...]:
        dead = tuple(x for x in dict.fromkeys(n.inputs) if self.uses[x][-1] == i and x not in self.returned)
        if not self.uses[n.name] and n.name not in self.returned:
            dead += (n.name,)
        return dead

    def _moves(self, n: Node, mode: Mode) -> tuple[tuple[str, Placement], ...]:
        moves: list[tuple[str, Placement]] = []
        for x, want in zip(n.inputs, mode.wants, strict=True):
            if want is not None and want != self.loc[x] and x not in dict(moves):
                moves.append((x, want))
        return tuple(moves)

    def _first_reader_wants(self, n: Node) -> Placement | None:
        """Where the op's first reader wants its output: a conv its input placement, a head DRAM;
        None when the reader adapts to its input (eltwise) or decides later (pools, upsample)."""
        users = self.uses[n.name]
        if not users:
            return None
        u = self.g.nodes[users[0]]
        if is_output(u):
            return DRAM
        if is_conv(u):
            return conv_input_placement(u, ConvShape.of(u, n.out.shape))
        return None

    def _cost_us(self, i: int, n: Node, mode: Mode, spilled: set[str]) -> float:
        """Modeled time of this choice: the op with its spills and moves (cost_model.op_cost), plus
        the moves it forces later: each spilled tensor comes back for its next reader, and the
        output moves to where its first reader wants it (back to L1 when that is unknown)."""
        spills = tuple((x, DRAM) for x in sorted(spilled, key=lambda x: self.order[x]))
        plan = dataclasses.replace(
            plan_of(n), output=mode.output, reshard_inputs=self._moves(n, mode), spill_before=spills
        )
        us = op_cost(
            n, plan, self.t, [self.operand(x) for x in n.inputs], [self.operand(x) for x, _ in spills]
        ).total_us
        for x, _ in spills:
            us += reshard_cost(self.nodes[x].out.shape, self.dtype(x), DRAM, self.loc[x], self.t).total_us
        want = self._first_reader_wants(n)
        if want is None and mode.output.buffer == "DRAM" and self.uses[n.name]:
            want = self.height(n.name)
        if want is not None and want != mode.output:
            us += reshard_cost(n.out.shape, plan_of(n).dtype, mode.output, want, self.t).total_us
        return us

    def operand(self, name: str) -> Operand:
        return Operand(self.nodes[name].out.shape, self.dtype(name), self.loc[name])

    def place(self, i: int, n: Node) -> Node:
        """Cheapest (mode, spill set) that fits at address level; ties go to the earlier mode and to
        Belady. A conv whose chosen config fits in no mode falls back to conv sharding's other legal
        configs, cheapest first (DRAM slicing among them)."""
        pin = self.overrides.for_node(n) if self.overrides else None
        notes: list[str] = []
        best = self._best(i, n, pin)
        if best is None and is_conv(n):
            source = self.nodes[n.inputs[0]]
            source_dtype = self.live[source.name].dtype
            s = ConvShape.of(n, source.out.shape)
            readers = tuple(self.g.nodes[u].op for u in self.uses[n.name])
            # channel groups join as tiles: only for a conv whose layout plan wrote TILE
            groups = channel_groups(s) if plan_of(n).layout == "TILE" else ()
            for parts in (1, *groups) if not (pin and pin.channel_slices) else (None,):
                configs, _ = legal_configs(n, s, source_dtype, self.t, self.budget, pin, readers, parts)
                for _, conv in rank_configs(n, configs, source.out, source_dtype, self.loc[source.name], self.t):
                    if conv == plan_of(n).conv:
                        continue
                    alt = dataclasses.replace(n, plan=dataclasses.replace(plan_of(n), conv=conv))
                    best = self._best(i, alt, pin)
                    if best is not None:
                        sliced = f" in {conv.channel_slices} input-channel groups" if conv.channel_slices > 1 else ""
                        notes.append(
                            f"memory: conv config {conv.slice_type} {conv.shard_layout}{sliced} instead of the "
                            f"chosen {conv_of(n).slice_type} {conv_of(n).shard_layout}, which does not fit L1 here"
                        )
                        n = alt
                        break
                if best is not None:
                    break
        if best is None:
            # The model is too large for this device at this size: the user's choice, not a bug.
            raise UserError(
                f"no placement of {n.name} ({n.op}, {n.source}) fits the {self.budget} B of L1 per core "
                f"of {self.t.name} at address level, with every conv config and spill tried; use a "
                "smaller input size or a target with more L1"
            )
        (us, _), mode, trial, order, count = best
        why = "farthest next use first" if order == "belady" else "largest first, cheaper than Belady here"
        notes += [
            f"spill {x} to DRAM (next use at op {self._next_use(x, i)}; {why})"
            for x in sorted(trial.spilled, key=lambda x: self.order[x])
        ]
        if trial.reallocs:
            notes.append(f"memory: reallocate {', '.join(trial.reallocs)} to close L1 holes")
        if count > 1:
            notes.append(f"memory: cheapest of {count} placements, {us:.1f} us with follow-on moves")
        return self._commit(i, n, mode, trial, notes)

    def _best(self, i: int, n: Node, pin) -> tuple | None:
        modes = [self._physical(n, m) for m in self._modes(n)]
        if n.name in self.returned and all(is_output(self.g.nodes[u]) for u in self.uses[n.name]):
            modes = [m for m in modes if m.output.buffer == "DRAM"] or modes  # heads written straight to DRAM
        if pin and pin.memory:
            modes = [m for m in modes if m.output.buffer == pin.memory]
            if not modes:
                raise UserError(f"override memory {pin.memory} for {n.name!r} is impossible for a {n.op}: remove it")
        best = None
        for rank, mode in enumerate(modes):
            for order in SPILL_ORDERS:
                trial = self._spill_set(i, n, mode, order)
                if trial is None:
                    continue
                key = (round(self._cost_us(i, n, mode, trial.spilled), 3), rank)
                if best is None or key < best[0]:
                    best = (key, mode, trial, order, len(modes))
                if not trial.spilled:
                    break  # both orders spill nothing
        return best

    def _commit(self, i: int, n: Node, mode: Mode, trial: Trial, notes: list[str]) -> Node:
        self.sim, self.live = trial.sim, trial.live
        spills = tuple((x, DRAM) for x in sorted(trial.spilled, key=lambda x: self.order[x]))
        for x, _ in spills:
            self.loc[x] = DRAM
        moves = self._moves(n, mode)
        for x, want in moves:
            self.loc[x] = want
        self.loc[n.name] = mode.output
        dead = self._dead(i, n)
        for x in dead:
            del self.loc[x]
        plan = dataclasses.replace(
            plan_of(n),
            output=mode.output,
            reshard_inputs=moves,
            spill_before=spills,
            deallocate_after=dead,
            reallocate_before=trial.reallocs,
            l1_peak_per_core=trial.peak,
            slices=mode.slices,
            notes=plan_of(n).notes
            + (f"memory: {mode.why}, output {mode.output.buffer} {mode.output.layout}",)
            + tuple(notes),
        )
        return dataclasses.replace(n, plan=plan)

    def run(self) -> Graph:
        out = []
        for i, n in enumerate(self.g.nodes):
            if is_input(n):
                self.loc[n.name] = DRAM
                self.live[n.name] = TensorState(DRAM, *self.shape(n.name), plan_of(n).dtype, plan_of(n).layout)
                plan = dataclasses.replace(
                    plan_of(n), output=DRAM, notes=plan_of(n).notes + ("memory: model input arrives DRAM-interleaved",)
                )
                out.append(dataclasses.replace(n, plan=plan))
            elif is_output(n):  # no device op: the head tensor, moved to DRAM if it is not there
                x = n.inputs[0]
                moves = () if self.loc[x] == DRAM else ((x, DRAM),)
                self.loc[x] = DRAM
                plan = dataclasses.replace(plan_of(n), reshard_inputs=moves)
                simulate_op(self.sim, self.live, dataclasses.replace(n, plan=plan), self.shapes, self.t)
                plan = dataclasses.replace(
                    plan_of(n),
                    output=DRAM,
                    reshard_inputs=moves,
                    notes=plan_of(n).notes + ("memory: head output in DRAM",),
                )
                out.append(dataclasses.replace(n, plan=plan))
            else:
                out.append(self.place(i, n))
        return self.g.replace_nodes(out)


# the placements each memory recipe (converter/ops: OpKind.memory) offers, in preference order
_MODES = {
    Memory.CONV: _Planner._conv_modes,
    Memory.BINARY: _Planner._binary_modes,
    Memory.UNARY: _Planner._unary_modes,
    Memory.AFFINE: _Planner._unary_modes,
    Memory.UPSAMPLE: _Planner._upsample_modes,
    Memory.CONCAT: _Planner._concat_modes,
    Memory.POOL: _Planner._pool_modes,
    Memory.RESAMPLE: _Planner._resample_modes,
    Memory.GLOBAL_POOL: _Planner._global_pool_modes,
}


def memory_plan(
    graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE, overrides: Overrides | None = None
) -> Graph:
    return _Planner(graph, target, target.l1_budget(l1_small_size), l1_small_size, overrides).run()
