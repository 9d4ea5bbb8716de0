"""The real ttnn 0.81.1 on a MOCK device: ttnn's own host checks judge a generated program.

ttnn opens a mock device when `TT_METAL_MOCK_CLUSTER_DESC_PATH` names a cluster descriptor and a
RISC-V compiler exists under `$TT_METAL_RUNTIME_ROOT/runtime/sfpi`. We build that runtime root once
per wheel under the user's cache (`build_runtime_root`, called by scripts/setup.sh): symlinks to the
installed wheel (never modified)
plus a stand-in compiler. Firmware is prebuilt in the wheel and matched by the compiler's version
line, which the stand-in reports as the wheel's firmware was built with; kernels "build" into a
3-instruction stub linked with the wheel's own linker scripts by Debian's RISC-V binutils. No kernel
ever runs: ops execute host-side with real addresses, so ttnn's validation (TT_FATAL), its L1
allocator, out-of-memory and circular-buffer clash checks all apply; numerics do not.

The check runs in a child process (`python -m runtime.ttnn_mock check MODULE`): ttnn reads the
cluster descriptor and grid override once per process, and opening a device writes `generated/`
into the current directory, so the child runs in a temporary directory. tt-metal's JIT build cache
(`TT_METAL_CACHE`: firmware and the ~1,200 kernel stubs of a 512x1024 program, ~75 s to build on a
loaded 2-core machine) sits beside the root (`jit_cache_dir`), so every checkout, venv and run
reuses it: tt-metal keys each kernel by its sources, defines and compile arguments, rebuilds what
changed, and builds concurrently safely (temporary files renamed into place, file locks).
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from types import FrameType, ModuleType

from converter.errors import UserError
from hardware.targets import Target, get_target
from runtime import ttnn_trace
from runtime.weights import HostTensor
from templates import module_helpers

ROOT_FORMAT = 2  # bump when the runtime root's content changes
BINUTILS_PACKAGE = "binutils-riscv64-unknown-elf"
_STUB_ASM = """    .section .start,"ax",@progbits
    .globl _start
_start:
    call 1f
    ret
1:  ret
    .data
    .word 0
"""
# Not a compiler: answers tt-metal's version probe, turns compiles into empty objects (with their
# dependency files) and links the stub with tt-metal's own linker script for each kernel ELF.
_COMPILER = """#!/bin/bash
case "$1" in --version) echo "riscv-tt-elf-g++ @IDENT@"; exit 0;; esac
out=""; dep=""; src=""; compile=0; script=""; js=""; libs=(); args=("$@")
for ((i=0;i<${#args[@]};i++)); do a="${args[$i]}"
  case "$a" in -o) out="${args[$((i+1))]}";; -MF) dep="${args[$((i+1))]}";; -c) compile=1;;
    c++-header) exit 1;; -T*) script="${a#-T}";; -L*) libs+=("$a");;
    -Wl,--just-symbols=*) js="--just-symbols=${a#-Wl,--just-symbols=}";;
    *.cc|*.cpp|*.c|*.S) src="$a";; esac; done
if [ $compile = 1 ]; then : > "$out"; [ -n "$dep" ] && echo "$out: $src" > "$dep"; exit 0; fi
if [[ "$out" == *.elf && -n "$script" ]]; then
  exec riscv64-unknown-elf-ld -m elf32lriscv $js "${libs[@]}" -T "$script" --emit-relocs \\
    -z max-page-size=16 -z common-page-size=16 "@STUB@" -o "$out"
fi
echo "riscv-tt-elf-g++ stand-in: unhandled call: $*" >&2; exit 1
"""


def _mock_home() -> Path:
    """The mock root and tt-metal's JIT build cache of this wheel and stand-in, under the user's cache
    ($XDG_CACHE_HOME or ~/.cache). The wheel's RECORD (every file's hash) names the wheel exactly, so
    every checkout and venv with the same wheel shares them: tt-metal's record of a build names its
    inputs by path, so the root must keep one path for the cache to stay valid across checkouts."""
    record = next(_ttnn_package().parent.glob("ttnn-*.dist-info/RECORD"))
    key = hashlib.sha256(record.read_bytes() + f"{ROOT_FORMAT}{_COMPILER}{_STUB_ASM}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pdl2ttnn" / f"ttnn-mock-{record.parent.name.removesuffix('.dist-info')}-{key}"


def runtime_root() -> Path:
    """Where the mock runtime root lives (PDL2TTNN_TTNN_MOCK_ROOT overrides it)."""
    return Path(os.environ.get("PDL2TTNN_TTNN_MOCK_ROOT") or _mock_home() / "root")


def jit_cache_dir() -> Path:
    """tt-metal's JIT build cache (TT_METAL_CACHE): firmware and kernel stubs, reused by every run."""
    return _mock_home() / "jit"


def _ttnn_package() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("ttnn")
    if spec is None or spec.origin is None:
        raise UserError("the real ttnn is not installed: run scripts/setup.sh")
    return Path(spec.origin).parent


def _compiler_ident(package: Path) -> str:
    """The compiler identity the wheel's prebuilt firmware was built with (its ELF .comment)."""
    elf = sorted(package.glob("tt_metal/pre-compiled/*/brisc/brisc.elf"))[0]
    out = subprocess.run(
        ["riscv64-unknown-elf-readelf", "-p", ".comment", str(elf)], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"GCC: (\(.*)", out)
    if match is None:
        raise RuntimeError(f"no compiler identity in {elf}'s .comment section")
    return match.group(1).strip()


def binutils_missing() -> str | None:
    """A one-line reason when Debian's RISC-V binutils are not on PATH, else None."""
    for tool in ("riscv64-unknown-elf-as", "riscv64-unknown-elf-ld", "riscv64-unknown-elf-readelf"):
        if shutil.which(tool) is None:
            return (
                f"{tool} not found: install Debian's {BINUTILS_PACKAGE} "
                f"(apt-get install {BINUTILS_PACKAGE}; scripts/setup.sh does this as root)"
            )
    return None


def build_runtime_root(root: Path | None = None) -> Path:
    """Build the mock runtime root (idempotent: returns at once when it is complete)."""
    root = runtime_root() if root is None else root
    package = _ttnn_package()
    if _root_ready(root):
        return root
    missing = binutils_missing()
    if missing:
        raise UserError(missing)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / "build.lock", "w") as lock:  # checks started at once build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _root_ready(root):
            _build_root(root, package)
    return root


def _root_ready(root: Path) -> bool:
    """Complete, and its links resolve: another venv's identical wheel will do while that venv exists
    (the key of _mock_home is the wheel's content)."""
    stamp = root / "pdl2ttnn-root.json"
    return stamp.is_file() and json.loads(stamp.read_text()) == {"format": ROOT_FORMAT} and (root / "tt_metal").is_dir()


def _build_root(root: Path, package: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    (root / "runtime" / "sfpi" / "compiler" / "bin").mkdir(parents=True)
    (root / "runtime" / "sfpi" / "include").mkdir()
    for entry in package.iterdir():
        if entry.name != "runtime":
            (root / entry.name).symlink_to(entry)
    (root / "runtime" / "hw").symlink_to(package / "runtime" / "hw")
    stub = root / "stub"
    stub.mkdir()
    (stub / "stub.S").write_text(_STUB_ASM)
    subprocess.run(
        ["riscv64-unknown-elf-as", "-march=rv32im", "-mabi=ilp32", str(stub / "stub.S"), "-o", str(stub / "stub.o")],
        check=True,
    )
    compiler = root / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    compiler.write_text(_COMPILER.replace("@IDENT@", _compiler_ident(package)).replace("@STUB@", str(stub / "stub.o")))
    compiler.chmod(0o755)
    (root / "pdl2ttnn-root.json").write_text(json.dumps({"format": ROOT_FORMAT}))


def cluster_descriptor(target: Target) -> str:
    return str(files("runtime") / "mock_cluster" / f"{target.mock_cluster}.yaml")


def mock_env(target: Target) -> dict[str, str]:
    """The environment a child process needs to open `target` as a mock device."""
    root = runtime_root()
    env = {
        "TT_METAL_MOCK_CLUSTER_DESC_PATH": cluster_descriptor(target),
        "TT_METAL_RUNTIME_ROOT": f"{root}/",
        "TT_METAL_CACHE": f"{jit_cache_dir()}/",
        "LOGURU_LEVEL": "ERROR",
        "TT_LOGGER_LEVEL": "error",
    }
    if target.grid_override:
        env["TT_METAL_CORE_GRID_OVERRIDE_TODEPRECATE"] = target.grid_override
    return env


# ---------------------------------------------------------------------------------------------
# The check (child side)


@dataclass
class OpUsage:
    """What real ttnn allocated for one top-level ttnn call of the generated module."""

    line: int  # line in the generated module
    op: str  # ttnn function name
    layer: str  # plan name of the layer (from the statement), or the assigned variable
    cb_per_core: int  # peak static circular-buffer bytes per core (dataflow buffers included)
    l1_per_core: int  # peak L1 buffer bytes per core the call allocated (outputs, halo, temporaries)
    peak_per_core: int  # ttnn's peak_total for the call
    live_before: int  # L1 + L1_SMALL bytes per bank allocated when the call began (NORMAL mode only:
    # NO_DISPATCH records allocations without placing them)
    events: list = field(default_factory=list)  # the call's L1 facts (runtime/ttnn_trace.events)

    @property
    def total_peak(self) -> int:
        """What the call needed per core at its peak: what was live, plus its own peak."""
        return self.live_before + self.peak_per_core


@dataclass
class CheckResult:
    module: str
    target: str
    mode: str  # "normal" | "no_dispatch"
    accepted: bool
    l1_free_per_bank: int = 0  # ttnn.get_memory_view after opening, before any tensor
    grid: tuple[int, int] = (0, 0)
    chips: int = 0  # devices the program ran on (a mesh target's whole mesh)
    error: str = ""  # ttnn's own message, condensed to its first meaningful line
    layer: str = ""  # rejected layer
    line: int = 0  # rejected line of the generated module
    statement: str = ""
    ops: list[OpUsage] = field(default_factory=list)
    seconds: float = 0.0

    def verdict(self) -> str:
        if self.accepted:
            return "real ttnn: accepted"
        return f"real ttnn: REJECTED at {self.layer} (line {self.line}): {self.error}"


_FATAL = re.compile(r"(TT_FATAL|TT_THROW)[^\n]*")


def condense(message: str) -> str:
    """ttnn's exception text without its C++ backtrace: the TT_FATAL/TT_THROW line and its info."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if _FATAL.search(ln):
            info = []
            for x in lines[i + 1 :]:
                if x.startswith(("backtrace:", "---")):
                    break
                info.append(x)
            return " ".join([ln, *info])
    return lines[0] if lines else "unknown error"


def _statements(text: str) -> dict[int, tuple[int, str]]:
    """line -> (first line, text on one line) of the simple statement covering it."""
    spans: dict[int, tuple[int, str]] = {}
    lines = [ln.encode() for ln in text.splitlines(keepends=True)]  # ast's offsets count UTF-8 bytes
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Assign, ast.Expr, ast.Return)) and node.end_lineno is not None:
            # ast.get_source_segment would split the whole text again for every statement
            source = b"".join(lines[node.lineno - 1 : node.end_lineno])
            source = source[
                node.col_offset : len(source) - len(lines[node.end_lineno - 1]) + (node.end_col_offset or 0)
            ]
            segment = " ".join(ln.strip() for ln in source.decode().splitlines())
            for line in range(node.lineno, node.end_lineno + 1):
                spans.setdefault(line, (node.lineno, segment))
    return spans


def _layer_of(statement: str, names: set[str]) -> str:
    for literal in re.findall(r'"([^"]+)"', statement):
        if literal in names:
            return literal
    match = re.match(r"\s*(\w+)\s*=", statement)
    return match.group(1) if match else statement[:60]


def _usage(ttnn: ModuleType, trace) -> tuple[int, int, int]:
    usage = ttnn.graph.extract_resource_usage_per_core(trace)
    return int(usage.peak_cb + usage.peak_dataflow_buffer), int(usage.peak_l1), int(usage.peak_total)


class _Recorder:
    """A stand-in for the `ttnn` global of a generated module: every call of a ttnn function runs
    inside its own graph capture, so each op's real allocations are known by the line calling it."""

    def __init__(self, ttnn: ModuleType, device, run_mode, module_file: str, names: set[str], signpost=None):
        self._ttnn, self._device, self._mode, self._file, self._names = ttnn, device, run_mode, module_file, names
        self._signpost = signpost  # tracy.signpost on a profiled device run: the layer before each call
        self.statements = _statements(Path(module_file).read_text())
        self.ops: list[OpUsage] = []
        self.where: tuple[int, str] = (0, "")

    def _caller(self) -> tuple[int, str | None]:
        """The generated line that runs this call, and the `name` (a module path) of the method it is
        in: layers called through the module's helpers (conv2d, move, ...) take their caller's line."""
        frame: FrameType | None = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename != self._file:
            frame = frame.f_back
        while (
            frame is not None
            and frame.f_code.co_name in module_helpers()
            and frame.f_back is not None
            and frame.f_back.f_code.co_filename == self._file
        ):
            frame = frame.f_back
        if frame is None:
            return 0, None
        name = frame.f_locals.get("name")
        return frame.f_lineno, name if isinstance(name, str) else None

    def __getattr__(self, name: str):
        attr = getattr(self._ttnn, name)
        if isinstance(attr, type) or not callable(attr):  # config classes
            return attr

        def call(*args, **kwargs):
            at, module_path = self._caller()
            line, statement = self.statements.get(at, (0, ""))
            if module_path is not None:  # a shared block method: its layer names are f"{name}...."
                statement = statement.replace('f"{name}.', f'"{module_path}.').replace("{name}", module_path)
            layer = _layer_of(statement, self._names)
            self.where = (line, layer)
            if self._signpost is not None:
                self._signpost(layer)
            ttnn = self._ttnn
            live = sum(
                int(ttnn.get_memory_view(self._device, kind).total_bytes_allocated_per_bank)
                for kind in (ttnn.BufferType.L1, ttnn.BufferType.L1_SMALL)
            )
            graph = ttnn.graph
            graph.begin_graph_capture(self._mode)
            try:
                result = attr(*args, **kwargs)
            finally:
                trace = graph.end_graph_capture()
            cb, l1, peak = _usage(self._ttnn, trace)
            self.ops.append(OpUsage(line, name, layer, cb, l1, peak, live, ttnn_trace.events(trace)))
            return result

        return call


def placeholder_weights(ttnn: ModuleType, module: ModuleType) -> dict[str, HostTensor]:
    """Host weights of the right shapes and dtypes (values do not matter: kernels never run)."""
    import torch

    weights: dict[str, HostTensor] = {}
    for name, layer in module.CONV2D.items():
        host = "bfloat16" if layer["conv_config"].weights_dtype == ttnn.bfloat16 else "float32"
        torch_dtype = torch.bfloat16 if host == "bfloat16" else torch.float32
        kh, kw = layer["kernel_size"]
        shape = (layer["out_channels"], layer["in_channels"] // layer["groups"], kh, kw)
        parts = layer.get("channel_slices", 1)  # conv2d_by_channels: "<layer>.<group>" (runtime/weights.py)
        keys = [name] if parts == 1 else [f"{name}.{g}" for g in range(parts)]
        for i, key in enumerate(keys):
            weights[f"{key}.weight"] = HostTensor(torch.zeros(shape, dtype=torch_dtype), host, "ROW_MAJOR")
            if i == 0 or layer.get("join") == "concat":
                bias = torch.zeros((1, 1, 1, layer["out_channels"]), dtype=torch_dtype)
                weights[f"{key}.bias"] = HostTensor(bias, host, "ROW_MAJOR")
    for name, (shape, dtype) in getattr(module, "DEVICE_CONSTANTS", {}).items():  # absent: no constants
        weights[name] = HostTensor(torch.zeros(shape), dtype, "TILE")
    return weights


def _run_check(
    module_path: Path, target: Target, mode: str, report: Path | None = None, signposts: bool = False
) -> CheckResult:
    """Child side: open the mock device, build the generated model, run forward once. A mesh target
    opens its mesh and runs the data-parallel pipeline of runtime/mesh.py (inputs split over the chips,
    weights replicated, two command queues; trace, which crashes a mock, not) on two batches: the
    second is written on queue 1 after queue 0 ran the first. With `report`,
    the whole run (weights to device and forward) is also captured into ttnn's own report database
    there (`db.sqlite` + `config.json`, what ttnn-visualizer opens); ttnn's config comes from
    TTNN_CONFIG_OVERRIDES (`report_overrides`). With `signposts`, a tracy signpost names the layer
    before each ttnn call: run under tt-metal's profiler on a device (`python -m tracy -r -p -m
    runtime.ttnn_mock check ... --json X --signposts`, no mock environment), the per-op CSV then reads
    back per layer (compiler/perf_csv.py)."""
    import time

    import torch

    from runtime.backend import bind
    from runtime.mesh import Pipeline, close_mesh, open_mesh
    from runtime.run import load_module

    start = time.perf_counter()
    module = load_module(module_path)
    import ttnn

    bind(module, ttnn)
    result = CheckResult(str(module_path), target.name, mode, accepted=False)
    mesh = target.mesh
    meshed = target.num_chips > 1
    device = open_mesh(ttnn, module, mesh, 2 if meshed else 1)
    if mode == "no_dispatch":  # a cached program allocates no circular buffers: each op measured in full
        device.disable_and_clear_program_cache()
    try:
        grid = device.compute_with_storage_grid_size()
        result.grid = (grid.x, grid.y)
        result.chips = device.get_num_devices()
        result.l1_free_per_bank = int(ttnn.get_memory_view(device, ttnn.BufferType.L1).total_bytes_free_per_bank)
        names = set(module.CONV2D) | set(getattr(module, "OUTPUT_MEMORY", {}))
        run_mode = {"normal": ttnn.graph.RunMode.NORMAL, "no_dispatch": ttnn.graph.RunMode.NO_DISPATCH}[mode]
        if report is not None:  # the outermost capture: the recorder's per-op captures nest inside it
            if ttnn.CONFIG.enable_detailed_buffer_report:
                ttnn.graph.enable_detailed_buffer_tracing()
            ttnn.graph.begin_graph_capture(run_mode)
        pipeline = Pipeline(ttnn, module, device, placeholder_weights(ttnn, module), two_queues=meshed, trace=meshed)
        images = torch.zeros((pipeline.batch_size, *module.INPUT_SHAPE[1:]))
        signpost = None
        if signposts:
            import tracy

            signpost = tracy.signpost
        recorder = _Recorder(ttnn, device, run_mode, str(module.__file__), names, signpost)
        bind(module, recorder)  # type: ignore[arg-type]
        try:
            pipeline(images)
            if meshed:
                bind(module, ttnn)
                pipeline(images)
            result.accepted = True
        except Exception as exc:  # ttnn raises RuntimeError for TT_FATAL/TT_THROW; report any failure
            line, layer = recorder.where
            result.error = (
                condense(str(exc))
                if isinstance(exc, RuntimeError)
                else f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=-1).splitlines()[-2].strip()})"
            )
            result.line, result.layer = line, layer
            result.statement = recorder.statements.get(line, (0, ""))[1]
        finally:
            bind(module, ttnn)
        result.ops = recorder.ops
        if report is not None:
            _write_report(ttnn, report)
    finally:
        close_mesh(ttnn, device, mesh)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _write_report(ttnn: ModuleType, report: Path) -> None:
    """End the outermost capture and import it the way ttnn's own pytest report fixture does
    (ttnn/graph_report.py): graph JSON -> SQLite database, plus the config the visualizer shows."""
    report.mkdir(parents=True, exist_ok=True)
    capture = report / "graph_capture.json"
    ttnn.graph.end_graph_capture_to_file(str(capture))
    if ttnn.CONFIG.enable_detailed_buffer_report:
        ttnn.graph.disable_detailed_buffer_tracing()
    ttnn.graph.import_report(capture, report)
    for sidecar in report.glob("graph_capture*.json"):
        sidecar.unlink()
    ttnn.save_config_to_json_file(str(report / "config.json"))


def report_overrides(name: str) -> str:
    """TTNN_CONFIG_OVERRIDES for a reported run: the slow runtime path, which records every op's
    arguments and tensors (fast runtime mode records no per-op graphs), and detailed buffers (L1 per
    core). ttnn's pytest fixture would import the capture under root_report_path/report_name; we
    import it into the report directory ourselves, so report_name only names it in config.json."""
    return json.dumps(
        {
            "enable_fast_runtime_mode": False,
            "enable_logging": True,
            "enable_graph_report": True,
            "enable_detailed_buffer_report": True,
            "report_name": name,
        }
    )


# ---------------------------------------------------------------------------------------------
# The check (parent side)


def run_child(
    target: Target, argv: list[str], cwd: Path, timeout: float, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python argv...` in `cwd` with real ttnn set up to open `target` as a mock device."""
    build_runtime_root()
    env = {**os.environ, **mock_env(target), **(extra_env or {})}
    env.pop("PDL2TTNN_BACKEND", None)
    project = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = project + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_probe(target: str, argv: list[str]) -> subprocess.CompletedProcess:
    """A probe script's child side (`python argv...`) on a mock `target` device, in a scratch directory
    (opening a device writes generated/ into the cwd); on failure the tail of its stderr goes to ours."""
    with tempfile.TemporaryDirectory() as tmp:
        done = run_child(get_target(target), argv, Path(tmp), timeout=3600)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
    return done


def check_module(
    module_path: Path, target: Target | str, mode: str = "normal", timeout: float = 1800.0, report: Path | None = None
) -> CheckResult:
    """Run the generated module at `module_path` through real ttnn on a mock `target` device; with
    `report`, leave ttnn's own report of the run in that directory (see `_run_check`)."""
    target = get_target(target) if isinstance(target, str) else target
    module_path = Path(module_path).resolve()
    with tempfile.TemporaryDirectory(prefix="pdl2ttnn-ttnn-") as work:
        out = Path(work) / "result.json"
        argv = [
            "-m",
            "runtime.ttnn_mock",
            "check",
            str(module_path),
            "--target",
            target.name,
            "--mode",
            mode,
            "--json",
            str(out),
        ]
        extra = None
        if report is not None:
            report = Path(report).resolve()
            argv += ["--report", str(report)]
            extra = {"TTNN_CONFIG_OVERRIDES": report_overrides(module_path.stem)}
        proc = run_child(target, argv, cwd=Path(work), timeout=timeout, extra_env=extra)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            if proc.returncode == -9:  # SIGKILL: the kernel's OOM killer, as a rule
                tail = "killed, most likely out of memory" + (
                    " (ttnn's detailed report of a 512x1024 module needs over 14 GB)" if report is not None else ""
                )
            return CheckResult(
                str(module_path),
                target.name,
                mode,
                accepted=False,
                error=f"the real-ttnn check process failed (exit {proc.returncode}): {tail}",
            )
        raw = json.loads(out.read_text())
    raw["ops"] = [OpUsage(**op) for op in raw["ops"]]
    raw["grid"] = tuple(raw["grid"])
    return CheckResult(**raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.ttnn_mock")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the mock runtime root (idempotent)")
    check = sub.add_parser("check", help="run a generated module through real ttnn on a mock device")
    check.add_argument("module", type=Path)
    check.add_argument("--target", default="blackhole-20")
    check.add_argument("--mode", choices=("normal", "no_dispatch"), default="normal")
    check.add_argument("--json", type=Path, help="write the result here (child mode)")
    check.add_argument("--report", type=Path, help="also leave ttnn's own report (ttnn-visualizer) here")
    check.add_argument(
        "--signposts",
        action="store_true",
        help="a tracy signpost per ttnn call, naming its layer (child mode, for a profiled run)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build_runtime_root())
            return 0
        target = get_target(args.target)
        if args.json is None:
            result = check_module(args.module, target, args.mode, report=args.report)
        else:
            result = _run_check(args.module, target, args.mode, args.report, args.signposts)
            args.json.write_text(json.dumps(asdict(result)))
            return 0
    except UserError as exc:
        print(f"ttnn_mock: error: {exc}", file=sys.stderr)
        return 2
    if args.json is None:
        print(result.verdict())
        if result.statement:
            print(f"  {result.statement}")
    return 0 if result.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
