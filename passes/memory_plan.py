"""TRANSFORM: place every tensor in L1 or DRAM, insert moves and deallocations (OpPlan placement fields).

Walks the program in order with the set of live tensors and where each one currently is:
1. Each op offers placement *modes* in preference order (`_modes`): the placements it wants for its
   inputs, its output placement and its transient L1 (circular buffers, halo, slices). E.g. a conv
   wants its input sharded as conv sharding chose (or in DRAM when sliced); bilinear upsample wants
   a HEIGHT_SHARDED L1 input (ttnn 0.81.1 requires it); an add wants both operands sharded alike.
2. A mode fits when its per-core peak is within the budget: peak = all live L1 tensors + moved-in
   copies + the output + the transient. When it does not fit, live tensors the op does not read are
   spilled to DRAM until it does, farthest next use first (Belady) or, as the alternative, largest
   first; spills are recorded in `spill_before` and notes. Among the (mode, spill order) pairs that
   fit, the cheapest by passes/cost_model.py wins: the op with its moves and spills, plus the moves
   the choice forces later (spilled tensors coming back, the output moving to where its first
   reader wants it). Ties go to the earlier mode and to Belady. Every candidate fits the budget,
   so the plan never exceeds it, whatever the costs say.
3. Inputs not where the op wants them are moved (`reshard_inputs`); a move *replaces* the tensor,
   so later readers see the new placement. Graph outputs are written to DRAM; the model input
   arrives DRAM-interleaved; an `output` node moves its head tensor to DRAM if it is not written
   there directly. Each tensor is deallocated after its last reader (`deallocate_after`),
   except what the graph returns.
Activations stay [1, 1, N*H*W, C] throughout: every placement is of that 2-D view.

How the code generator reads a node's plan, in this order:
  for (name, p) in spill_before + reshard_inputs: name = to_memory_config(name, p) (free the old copy);
  run the op with its output memory config from `output`;
  for name in deallocate_after: ttnn.deallocate(name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from converter.errors import UserError
from converter.ir import Graph, Node
from passes import cb_model
from passes.conv_sharding import ConvShape, conv_input_placement, conv_output_placement
from passes.cost_model import Operand, op_cost, reshard_cost
from passes.overrides import Overrides
from passes.plan import Placement
from passes.shards import height_placement, l1_bytes_per_core, placement_like, rows_cols, tensor_bytes
from passes.targets import DEFAULT_L1_SMALL_SIZE, Target

DRAM = Placement("DRAM", "INTERLEAVED")
L1_INTERLEAVED = Placement("L1", "INTERLEAVED")
SPILL_ORDERS = ("belady", "largest")


class PlanError(RuntimeError):
    """The planner found no placement that fits (a compiler bug: the ladder should prevent it)."""


@dataclass(frozen=True)
class Mode:
    wants: tuple[Placement | None, ...]  # per input; None = wherever it is
    output: Placement
    transient: int  # per-core L1 the op needs while it runs, besides its inputs and output
    why: str
    pool_slices: tuple[str, int] | None = None


class _Planner:
    def __init__(self, graph: Graph, target: Target, budget: int, overrides: Overrides | None):
        self.g, self.t, self.budget, self.overrides = graph, target, budget, overrides
        self.nodes = {n.name: n for n in graph.nodes}
        self.order = {n.name: i for i, n in enumerate(graph.nodes)}
        self.uses: dict[str, list[int]] = {n.name: [] for n in graph.nodes}
        for i, n in enumerate(graph.nodes):
            for x in n.inputs:
                self.uses[x].append(i)
        self.returned = {x for n in graph.nodes if n.op == "output" for x in n.inputs}
        self.loc: dict[str, Placement] = {}

    # --- sizes -------------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, int]:
        return rows_cols(self.nodes[name].out)

    def dtype(self, name: str) -> str:
        return self.nodes[name].plan.dtype

    def l1(self, name: str, p: Placement) -> int:
        return l1_bytes_per_core(p, *self.shape(name), self.dtype(name), self.t)

    def full_bytes(self, name: str) -> int:
        return tensor_bytes(*self.shape(name), self.dtype(name))

    def height(self, name: str) -> Placement:
        return height_placement(*self.shape(name), self.t)

    # --- what each op accepts ------------------------------------------------------------------
    def _modes(self, n: Node) -> list[Mode]:
        ins = n.inputs
        rows, cols = rows_cols(n.out)
        out_h = height_placement(rows, cols, self.t)
        cur = [self.loc[x] for x in ins]
        if n.op == "conv2d":
            s = ConvShape.of(n, self.nodes[ins[0]].out.shape)
            c = n.plan.conv
            out = conv_output_placement(n, s)
            p_in = conv_input_placement(n, s)
            transient = c.l1_bytes_per_core - self.l1(ins[0], p_in) - l1_bytes_per_core(out, rows, cols, n.plan.dtype, self.t)
            modes = [Mode((p_in,), out, transient, f"conv {c.slice_type} {c.shard_layout}")]
            if out.buffer == "L1":  # written to DRAM through its L1 shard
                modes.append(Mode((p_in,), DRAM, transient + l1_bytes_per_core(out, rows, cols, n.plan.dtype, self.t),
                                  "conv output to DRAM"))
            return modes
        if n.op == "add":
            sharded = [p for p in cur if p.buffer == "L1" and p.sharded]
            p = placement_like(sharded[0], rows, cols) if sharded else out_h
            return [Mode((p, p), p, 0, "add on matching shards"),
                    Mode((DRAM, DRAM), DRAM, cb_model.eltwise_cb_bytes(num_inputs=2, sharded=False, dtype=n.plan.dtype),
                         "add in DRAM")]
        if n.op in ("relu", "mul_scalar", "channel_affine", "batch_norm"):
            same = placement_like(cur[0], rows, cols)
            cb = cb_model.eltwise_cb_bytes(num_inputs=1, sharded=same.sharded, dtype=n.plan.dtype)
            return [Mode((None,), same, cb, "eltwise in place of its input"),
                    Mode((cur[0],), out_h, cb, "eltwise to L1"),
                    Mode((DRAM,), DRAM, cb_model.eltwise_cb_bytes(num_inputs=1, sharded=False, dtype=n.plan.dtype),
                         "eltwise in DRAM")]
        if n.op == "upsample":
            c_in = self.shape(ins[0])[1]
            p_in = self.height(ins[0])
            cb = cb_model.upsample_cb_bytes(channels=c_in, mode=n.attrs["mode"], shard_layout="HEIGHT_SHARDED",
                                            grid=p_in.grid, num_cores=p_in.num_cores, dtype=n.plan.dtype)
            if n.attrs["mode"] == "bilinear":  # neighbour rows come through a halo
                ih, iw = self.nodes[ins[0]].out.shape[2:]
                cb += cb_model.halo_bytes(batch=n.out.shape[0], input_hw=(ih, iw), channels=c_in, kernel_size=(3, 3),
                                          stride=(1, 1), padding=(1, 1), dilation=(1, 1), shard_layout="HEIGHT_SHARDED",
                                          grid=p_in.grid, num_cores=p_in.num_cores, dtype=n.plan.dtype, num_slices=0)
            why = "bilinear upsample needs HEIGHT_SHARDED L1 input" if n.attrs["mode"] == "bilinear" else "upsample"
            return [Mode((p_in,), out_h, cb, why), Mode((p_in,), DRAM, cb, why + ", output to DRAM")]
        if n.op == "concat":
            wants = tuple(self.height(x) for x in ins)
            return [Mode(wants, out_h, 0, "concat of height shards"),
                    Mode(tuple(DRAM for _ in ins), DRAM,
                         cb_model.concat_cb_bytes(channels_out=cols, num_inputs=len(ins), sharded=False, dtype=n.plan.dtype),
                         "concat in DRAM")]
        if n.op in ("max_pool2d", "avg_pool2d"):
            p_in = self.height(ins[0])
            a = n.attrs
            _, c, ih, iw = self.nodes[ins[0]].out.shape
            cb = cb_model.pool2d_cb_bytes(channels=c, kernel_size=a["kernel_size"], shard_layout="HEIGHT_SHARDED",
                                          grid=p_in.grid, num_cores=p_in.num_cores, dtype=n.plan.dtype)

            def halo(slices: int) -> int:
                return cb_model.halo_bytes(batch=n.out.shape[0], input_hw=(ih, iw), channels=c,
                                           kernel_size=a["kernel_size"], stride=a["stride"], padding=a["padding"],
                                           dilation=a.get("dilation", (1, 1)), shard_layout="HEIGHT_SHARDED",
                                           grid=p_in.grid, num_cores=p_in.num_cores, dtype=n.plan.dtype,
                                           num_slices=slices)
            modes = [Mode((p_in,), out_h, cb + halo(0), "pool on height shards"),
                     Mode((p_in,), DRAM, cb + halo(0), "pool, output to DRAM")]
            k = 2
            while k <= n.out.shape[3]:  # ttnn pools take dram_slice_config like convs: width slices
                in_slice = self.l1(ins[0], p_in) // k + 1
                out_slice = l1_bytes_per_core(out_h, rows, cols, n.plan.dtype, self.t) // k + 1
                modes.append(Mode((DRAM,), DRAM, cb + halo(k) + in_slice + out_slice,
                                  f"pool DRAM-sliced in {k} width slices", ("DRAM_SLICE_WIDTH", k)))
                k *= 2
            return modes
        if n.op == "global_avg_pool2d":
            # ttnn converts a sharded input to interleaved first: count that copy
            copy = self.l1(ins[0], L1_INTERLEAVED) if cur[0].sharded else 0
            cb = cb_model.pool2d_cb_bytes(channels=cols, kernel_size=(1, 1), shard_layout="INTERLEAVED",
                                          grid=self.t.grid, num_cores=self.t.num_cores, dtype=n.plan.dtype)
            return [Mode((None,), L1_INTERLEAVED, copy + cb, "global pool to L1"),
                    Mode((DRAM,), DRAM, cb, "global pool in DRAM")]
        raise PlanError(f"memory planning does not know op {n.op!r} ({n.name})")

    # --- one op --------------------------------------------------------------------------------
    def _peak(self, n: Node, mode: Mode, spilled: set[str]) -> int:
        """Per-core peak of moving the inputs in and running the op, with `spilled` in DRAM."""
        live = {x: p for x, p in self.loc.items() if x not in spilled}
        base = sum(self.l1(x, p) for x, p in live.items())
        peak = base
        for x, want in zip(n.inputs, mode.wants):
            if want is not None and want != live[x]:
                peak = max(peak, base + self.l1(x, want))  # both copies exist during the move
                base += self.l1(x, want) - self.l1(x, live[x])
                live[x] = want
        return max(peak, base + self.l1(n.name, mode.output) + mode.transient)

    def _next_use(self, name: str, i: int) -> int:
        return next((u for u in self.uses[name] if u >= i), len(self.g.nodes))

    def _spill_set(self, i: int, n: Node, mode: Mode, order: str) -> tuple[set[str], int] | None:
        """Live tensors the op does not read, spilled in `order` until `mode` fits; None if it
        cannot. "belady": farthest next use first; "largest": most L1 per core first."""
        if order == "belady":
            key = lambda x: (-self._next_use(x, i), x)  # noqa: E731
        else:
            key = lambda x: (-self.l1(x, self.loc[x]), x)  # noqa: E731
        candidates = sorted((x for x, p in self.loc.items() if p.buffer == "L1" and x not in n.inputs), key=key)
        spilled: set[str] = set()
        peak = self._peak(n, mode, spilled)
        while peak > self.budget and candidates:
            spilled.add(candidates.pop(0))
            peak = self._peak(n, mode, spilled)
        return (spilled, peak) if peak <= self.budget else None

    def _moves(self, n: Node, mode: Mode) -> tuple[tuple[str, Placement], ...]:
        moves: list[tuple[str, Placement]] = []
        for x, want in zip(n.inputs, mode.wants):
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
        if u.op == "output":
            return DRAM
        if u.op == "conv2d":
            return conv_input_placement(u, ConvShape.of(u, n.out.shape))
        return None

    def _cost_us(self, i: int, n: Node, mode: Mode, spilled: set[str]) -> float:
        """Modeled time of this choice: the op with its spills and moves (cost_model.op_cost), plus
        the moves it forces later: each spilled tensor comes back for its next reader, and the
        output moves to where its first reader wants it (back to L1 when that is unknown)."""
        spills = tuple((x, DRAM) for x in sorted(spilled, key=lambda x: self.order[x]))
        plan = dataclasses.replace(n.plan, output=mode.output, reshard_inputs=self._moves(n, mode), spill_before=spills)
        us = op_cost(n, plan, self.t, [self.operand(x) for x in n.inputs], [self.operand(x) for x, _ in spills]).total_us
        for x, _ in spills:
            us += reshard_cost(self.nodes[x].out.shape, self.dtype(x), DRAM, self.loc[x], self.t).total_us
        want = self._first_reader_wants(n)
        if want is None and mode.output.buffer == "DRAM" and self.uses[n.name]:
            want = self.height(n.name)
        if want is not None and want != mode.output:
            us += reshard_cost(n.out.shape, n.plan.dtype, mode.output, want, self.t).total_us
        return us

    def operand(self, name: str) -> Operand:
        return Operand(self.nodes[name].out.shape, self.dtype(name), self.loc[name])

    def place(self, i: int, n: Node) -> Node:
        """Cheapest (mode, spill set) that fits the budget; ties go to the earlier mode and to Belady."""
        pin = self.overrides.for_node(n) if self.overrides else None
        modes = self._modes(n)
        if n.name in self.returned and all(self.g.nodes[u].op == "output" for u in self.uses[n.name]):
            modes = [m for m in modes if m.output.buffer == "DRAM"] or modes  # heads written straight to DRAM
        if pin and pin.memory:
            modes = [m for m in modes if m.output.buffer == pin.memory]
            if not modes:
                raise UserError(f"override memory {pin.memory} for {n.name!r} is impossible for a {n.op}: remove it")
        best = None
        for rank, mode in enumerate(modes):
            for order in SPILL_ORDERS:
                fit = self._spill_set(i, n, mode, order)
                if fit is None:
                    continue
                spilled, peak = fit
                key = (round(self._cost_us(i, n, mode, spilled), 3), rank)
                if best is None or key < best[0]:
                    best = (key, mode, spilled, peak, order)
                if not spilled:
                    break  # both orders spill nothing
        if best is None:
            raise PlanError(f"no placement of {n.name} ({n.op}) fits {self.budget} B per core")
        (us, _), mode, spilled, peak, order = best
        why = "farthest next use first" if order == "belady" else "largest first, cheaper than Belady here"
        notes = [f"spill {x} to DRAM (next use at op {self._next_use(x, i)}; {why})"
                 for x in sorted(spilled, key=lambda x: self.order[x])]
        if len(modes) > 1:
            notes.append(f"memory: cheapest of {len(modes)} placements, {us:.1f} us with follow-on moves")
        return self._commit(i, n, mode, spilled, peak, notes)

    def _commit(self, i: int, n: Node, mode: Mode, spilled: set[str], peak: int, notes: list[str]) -> Node:
        dram = 0
        spills = tuple((x, DRAM) for x in sorted(spilled, key=lambda x: self.order[x]))
        for x, _ in spills:
            self.loc[x] = DRAM
            dram += self.full_bytes(x)
        moves = self._moves(n, mode)
        for x, want in moves:
            if "DRAM" in (want.buffer, self.loc[x].buffer):
                dram += self.full_bytes(x)
            self.loc[x] = want
        dram += sum(self.full_bytes(x) for x in set(n.inputs) if self.loc[x].buffer == "DRAM")
        if mode.output.buffer == "DRAM":
            dram += self.full_bytes(n.name)
        if n.op == "conv2d":
            w = n.params["weight"]
            dram += w.numel() * (1088 / 1024 if n.plan.weights_dtype == "bfloat8_b" else cb_model.DATUM_BYTES[n.plan.weights_dtype])
        self.loc[n.name] = mode.output
        dead = tuple(x for x in dict.fromkeys(n.inputs) if self.uses[x][-1] == i and x not in self.returned)
        if not self.uses[n.name] and n.name not in self.returned:
            dead += (n.name,)
        for x in dead:
            del self.loc[x]
        plan = dataclasses.replace(
            n.plan, output=mode.output, reshard_inputs=moves, spill_before=spills, deallocate_after=dead,
            l1_peak_per_core=peak, dram_bytes=int(dram), pool_slices=mode.pool_slices,
            notes=n.plan.notes + (f"memory: {mode.why}, output {mode.output.buffer} {mode.output.layout}",) + tuple(notes))
        return dataclasses.replace(n, plan=plan)

    def run(self) -> Graph:
        out = []
        for i, n in enumerate(self.g.nodes):
            if n.op == "input":
                self.loc[n.name] = DRAM
                plan = dataclasses.replace(n.plan, output=DRAM, dram_bytes=self.full_bytes(n.name),
                                           notes=n.plan.notes + ("memory: model input arrives DRAM-interleaved",))
                out.append(dataclasses.replace(n, plan=plan))
            elif n.op == "output":  # no device op: the head tensor, moved to DRAM if it is not there
                x = n.inputs[0]
                moves = () if self.loc[x] == DRAM else ((x, DRAM),)
                self.loc[x] = DRAM
                plan = dataclasses.replace(n.plan, output=DRAM, reshard_inputs=moves,
                                           dram_bytes=self.full_bytes(x) if moves else 0,
                                           notes=n.plan.notes + ("memory: head output in DRAM",))
                out.append(dataclasses.replace(n, plan=plan))
            else:
                out.append(self.place(i, n))
        return self.g.replace_nodes(out)


def memory_plan(graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE,
                overrides: Overrides | None = None) -> Graph:
    return _Planner(graph, target, target.l1_budget(l1_small_size), overrides).run()
