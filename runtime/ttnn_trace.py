"""Reading ttnn's graph traces: what the device programs of a captured call allocated per core.

One reader for runtime/ttnn_op_probe.py (single ops) and runtime/ttnn_mock.py (every call of a
generated module). `events` reduces a trace to the L1 facts (plain JSON: buffers allocated and freed,
programs launched with their circular buffers); `programs` replays events, of one call or of
several calls in a row, into the programs launched and the buffers the events allocated that were
live while each ran. Pure Python over the trace's dicts: no ttnn import.
"""

from __future__ import annotations

import re

BUFFER_L1, BUFFER_L1_SMALL = 1, 3  # buffer_allocate's buffer_type
_RANGE = re.compile(r"\[(\d+)-(\d+) - (\d+)-(\d+)\]")


def _core_set(text: str) -> list[tuple[int, int]]:
    out = []
    for x0, y0, x1, y1 in _RANGE.findall(text):
        out += [(x, y) for x in range(int(x0), int(x1) + 1) for y in range(int(y0), int(y1) + 1)]
    return out


def events(trace) -> list[list]:
    """["+", key, bytes per bank, small] / ["-", key] for L1 and L1_SMALL buffers, ["p", device op] when
    a program starts, ["cb", bytes] per core of its most loaded core for each circular or dataflow
    buffer that no tensor backs. A buffer's key is its parameters (NO_DISPATCH puts every buffer at
    address 0), so a free matches the latest live buffer with the same parameters.

    A program cached by ttnn allocates no circular buffers again: capture with the cache disabled."""
    out: list[list] = []
    device_op, launched, started = "", True, False
    per_core: dict[tuple[int, int], int] = {}
    for node in trace:
        kind, p = node["node_type"], node.get("params") or {}
        if kind == "function_start":
            name = p.get("name", "")
            if not name.startswith(("tt::", "Tensor::", "ttnn::", "ttnn.")):
                device_op, launched = name, False
        elif kind in ("buffer_allocate", "buffer_deallocate") and int(p["buffer_type"]) in (BUFFER_L1, BUFFER_L1_SMALL):
            key = repr(sorted(p.items()))
            if kind == "buffer_allocate":
                out.append(["+", key, int(p["max_size_per_bank"]), int(p["buffer_type"]) == BUFFER_L1_SMALL])
            else:
                out.append(["-", key])
        elif kind == "circular_buffer_deallocate_all" and not launched:  # (also sent after a program ran)
            per_core, launched, started = {}, True, True
            out.append(["p", device_op])
        elif (
            kind in ("circular_buffer_allocate", "dataflow_buffer_allocate")
            and started
            and p.get("globally_allocated", p.get("borrows_memory")) == "0"
        ):
            before = max(per_core.values(), default=0)
            for core in _core_set(p["core_range_set"]):
                per_core[core] = per_core.get(core, 0) + int(p["size"])
            out.append(["cb", max(per_core.values(), default=0) - before])
    return out


def programs(evts) -> list[dict]:
    """The programs `evts` launched, in order: {"name", "cb" (per core), "l1" and "l1_small" (bytes per
    bank of the buffers these events allocated, live while the program ran)}. Frees of buffers
    allocated before the events are ignored."""
    live: list[tuple[str, int, bool]] = []
    out: list[dict] = []
    for e in evts:
        if e[0] == "+":
            live.append((e[1], e[2], e[3]))
        elif e[0] == "-":
            match = [i for i, (k, _, _) in enumerate(live) if k == e[1]]
            if match:
                live.pop(match[-1])
        elif e[0] == "p":
            out.append(
                {
                    "name": e[1],
                    "cb": 0,
                    "l1": [s for _, s, small in live if not small],
                    "l1_small": [s for _, s, small in live if small],
                }
            )
        elif out:
            out[-1]["cb"] += e[1]
    return out
