"""Build and run the cocotb tests of a LUT Tensor Core design on Icarus or Verilator.

``run_sim(verilog, manifest, sim, workdir)`` simulates Verilog that already exists: emitted
by ``gen.emit`` or written by you with the same interface (docs/interface.md) and a manifest of
the same form (``name``, ``top``, ``params``, ``ports``). The cocotb tests read the design's
configuration and ports from that manifest; nothing is emitted again. ``emit_and_sim(cfg, sim,
workdir)`` is the convenience step that emits a configuration first and then calls
``run_sim``. Both return the measured speed (simulated cycles per wall-second, also written to
``<workdir>/sim_<sim>/speed.json``); a failing simulation raises :class:`SimulationFailed`,
whose message names the failing tests, the seed, the log and, with waves on, the waveform file.

Everything the simulation needs reaches it through the runner's environment for the
simulator process (``extra_env``); this process's ``os.environ`` is never changed.

From the command line (``lutcore-sim`` once installed)::

    python -m tb.runner --sim verilator --waves --m 2 --n 4      # emit, then simulate
    python -m tb.runner --manifest build/lut_array_....json      # simulate existing RTL
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

from gen.tools import tool_env, verilator_waiver_flags

__all__ = ["run_sim", "emit_and_sim", "runner_for", "sim_build_args", "SimulationFailed",
           "SIMULATORS", "CLOCK_PERIOD_NS", "TEST_MODULES", "main"]

SIMULATORS = ("icarus", "verilator")
CLOCK_PERIOD_NS = 10
#: cocotb module per manifest ``top`` (the MAC baselines run the array's tests)
TEST_MODULES = {"array": "tb.test_lut_array", "engine": "tb.test_engine",
                "mac_dequant": "tb.test_lut_array", "mac_direct": "tb.test_lut_array"}
#: cocotb module of an array with ``fp`` tables (manifest ``params.table_format`` fp)
FP_TABLE_TEST_MODULE = "tb.test_fp_table_array"
#: cocotb module of the engine around it (``params.table_format`` fp, ``top`` engine)
FP_TABLE_ENGINE_TEST_MODULE = "tb.test_fp_table_engine"

#: Icarus compiles the emitted Verilog as Verilog-2005 (it comes after the runner's -g2012, so
#: it wins). Yosys' Verilog starts every `always @*` block at time 0 through a register with a
#: declaration initializer; in Verilog-2005 that initializer is an event at time 0, in
#: SystemVerilog mode (-g2012) Icarus applies it silently before time 0, so a combinational
#: block whose inputs never change (e.g. a row mux of a 1-row tile whose first result equals
#: the initial value) keeps X. Seen: m = 1, o_result payload X while valid.
ICARUS_FLAGS = ("-g2005",)


class SimulationFailed(AssertionError):
    """The cocotb tests failed (or the simulator died); the message says where to look."""


def _env_bool(name):
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


def sim_build_args(sim):
    """The build flags every simulation of emitted Verilog needs on ``sim``: the Verilator
    waivers of :data:`gen.tools.VERILATOR_WAIVERS`, or Icarus' Verilog-2005 mode."""
    return list(verilator_waiver_flags()) if sim == "verilator" else list(ICARUS_FLAGS)


def runner_for(sim, env):
    """A cocotb runner for ``sim`` whose processes get ``env`` on top of what cocotb sets.

    cocotb copies ``os.environ`` over the ``extra_env`` it is given and looks Verilator up on
    this process's PATH; the subclass puts ``env`` (the tool environment of
    :func:`gen.tools.tool_env` plus the test's variables) last instead, so nothing has to be
    written into ``os.environ``. Its Icarus build never adds cocotb's own waveform module (a
    SystemVerilog ``string`` that -g2005 refuses), whatever ``WAVES`` says: run_sim adds a
    Verilog-2005 one when asked for waves.
    """
    from cocotb_tools.runner import get_runner
    base = type(get_runner(sim))

    class Runner(base):
        def _set_env_common(self):
            own = dict(self.env)                 # extra_env of test(); empty for build()
            super()._set_env_common()
            self.env = tool_env(self.env)
            self.env.update(env)
            self.env.update(own)

        def _simulator_in_path_build_only(self):     # Verilator: the tool environment's one
            import shutil
            exe = shutil.which("verilator", path=tool_env().get("PATH"))
            if exe is None:
                raise SystemExit("ERROR: verilator executable not found!")
            self.executable = exe

        def _build_command(self):
            if sim == "icarus":
                self.waves = False
            return super()._build_command()

    return Runner()


def _results(path: Path):
    """(tests, failed, [(name, message)], sim_time_ns, wall_s) from a cocotb results XML."""
    root = ElementTree.parse(path).getroot()
    tests = failed = 0
    failures, sim_ns, wall = [], 0.0, 0.0
    for case in root.iter("testcase"):
        tests += 1
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        unit = props.get("sim_time_unit", "ns")
        scale = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}.get(unit, 1.0)
        sim_ns += float(props.get("sim_time_duration", 0) or 0) * scale
        wall += float(case.get("time", 0) or 0)
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            failed += 1
            failures.append((case.get("name"), (bad.get("message") or bad.text or "").strip()))
    return tests, failed, failures, sim_ns, wall


def _tail(path: Path, lines=40):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def run_sim(verilog, manifest, sim: str, workdir, *, waves=False, testcase=None, seed=None,
            effort=None, build_args=(), test_module=None, extra_env=None):
    """Build existing Verilog for ``sim`` and run its cocotb tests.

    ``verilog``: the source file (or a list of them); ``manifest``: its JSON manifest (path),
    which names the top module (``name``) and the design kind (``top``: ``array``, ``engine``,
    ``mac_dequant``, ``mac_direct``, which picks the cocotb module from :data:`TEST_MODULES`;
    an array with ``q`` tables, ``params.table_format``, runs ``tb.test_fp_lut_array``, one
    with ``fp`` tables :data:`FP_TABLE_TEST_MODULE`, the engines around them
    ``tb.test_fp_engine`` and :data:`FP_TABLE_ENGINE_TEST_MODULE`,
    unless ``test_module`` is given). ``extra_env`` (dict) goes to the simulator process.

    ``waves`` (or ``WAVES=1`` in the environment) dumps FST waveforms. ``testcase``: one name
    or a list (default all). ``seed``: the testbench seed (default ``LUTCORE_SEED`` or a fresh
    random one). ``effort``: ``quick`` / ``full`` (default ``LUTCORE_EFFORT`` or quick).

    Returns a dict with the speed (``cycles_per_s``) and run facts, also written to
    ``<workdir>/sim_<sim>/speed.json``. Raises :class:`SimulationFailed` on any failure.
    """
    if not isinstance(verilog, (str, os.PathLike, list, tuple)):
        raise TypeError("run_sim takes the Verilog and manifest paths; emit_and_sim(cfg, ...) "
                        f"emits a configuration first (got {type(verilog).__name__})")
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    sources = [Path(v).resolve() for v in
               (verilog if isinstance(verilog, (list, tuple)) else [verilog])]
    manifest = Path(manifest).resolve()
    info = json.loads(manifest.read_text())
    top_module = info["name"]
    if test_module is None and info.get("params", {}).get("table_format") == "q":
        # FP activations, q tables: FpLutEngine or FpLutArray
        test_module = "tb.test_fp_engine" if info.get("top") == "engine" else \
            "tb.test_fp_lut_array"
    if test_module is None and info.get("params", {}).get("table_format") == "fp":
        # FP tables: FpTableEngine or FpTableArray
        test_module = FP_TABLE_ENGINE_TEST_MODULE if info.get("top") == "engine" else \
            FP_TABLE_TEST_MODULE
    test_module = test_module or TEST_MODULES[info.get("top", "array")]
    waves = bool(waves) or _env_bool("WAVES")
    if seed is None:
        env_seed = os.environ.get("LUTCORE_SEED", "").strip()
        seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 31)
    effort = effort or os.environ.get("LUTCORE_EFFORT", "").strip() or "quick"
    workdir = Path(workdir).resolve()
    build_dir = workdir / f"sim_{sim}"
    build_dir.mkdir(parents=True, exist_ok=True)

    args = [*sim_build_args(sim), *build_args]
    if sim == "verilator" and waves:
        args.append("--trace-fst")
    if waves and sim == "icarus":
        # cocotb's own dump module declares a SystemVerilog `string`, which -g2005 refuses:
        # dump through a Verilog-2005 module of ours instead (vvp gets -fst from test()).
        dump = build_dir / "lutcore_dump.v"
        dump.write_text("module lutcore_dump;\n"
                        "initial begin\n"
                        f"    $dumpfile(\"{build_dir / (top_module + '.fst')}\");\n"
                        f"    $dumpvars(0, {top_module});\n"
                        "end\n"
                        "endmodule\n")
        sources.append(dump)
        args += ["-s", "lutcore_dump"]
    waves_file = None
    if waves:
        waves_file = (build_dir / f"{top_module}.fst" if sim == "icarus"
                      else build_dir / "dump.fst")
    log_file = build_dir / "sim.log"
    results_xml = build_dir / "results.xml"
    where = f"log {log_file}" + (f", waveform {waves_file}" if waves_file else
                                  f" (no waveform: repeat with WAVES=1 LUTCORE_SEED={seed})")
    note = f"{sim}, {top_module}, seed {seed} (LUTCORE_SEED={seed})"

    stream_file = build_dir / "stream_speed.json"
    stream_file.unlink(missing_ok=True)
    env = {**(extra_env or {}), "LUTCORE_MANIFEST": str(manifest), "LUTCORE_SEED": str(seed),
           "LUTCORE_EFFORT": effort, "LUTCORE_SPEED_FILE": str(stream_file)}
    runner = runner_for(sim, {k: str(v) for k, v in env.items()})
    t1 = time.perf_counter()
    try:
        runner.build(sources=sources, hdl_toplevel=top_module, build_dir=build_dir,
                     build_args=args, timescale=("1ns", "1ps"), waves=waves and sim != "icarus",
                     always=True, log_file=build_dir / "build.log")
    except (RuntimeError, SystemExit) as exc:
        tail = _tail(build_dir / "build.log")
        raise SimulationFailed(f"build failed ({note}): {exc}; build log "
                               f"{build_dir / 'build.log'}:\n{tail}") from None
    t_build = time.perf_counter() - t1
    t2 = time.perf_counter()
    crashed = None
    try:
        runner.test(test_module=test_module, hdl_toplevel=top_module, build_dir=build_dir,
                    test_dir=build_dir, testcase=testcase, waves=waves,
                    timescale=("1ns", "1ps"), results_xml=str(results_xml), log_file=log_file)
    except SystemExit as exc:                # pytest mode: failures exit(1)
        crashed = f"exit {exc.code}"
    except RuntimeError as exc:              # the simulator process itself failed
        crashed = str(exc)
    t_run = time.perf_counter() - t2

    if not results_xml.is_file():
        raise SimulationFailed(f"simulation died without results ({note}; {crashed}); "
                               f"{where}:\n{_tail(log_file)}")
    tests, failed, failures, sim_ns, wall = _results(results_xml)
    if failed or tests == 0:
        lines = "\n".join(f"  {name}: {msg}" for name, msg in failures) or "  (no tests ran)"
        raise SimulationFailed(f"{failed} of {tests} cocotb tests failed ({note}); "
                               f"{where}\n{lines}")
    if crashed:
        raise SimulationFailed(f"simulator ended badly after passing tests ({note}; "
                               f"{crashed}); {where}")

    cycles = sim_ns / CLOCK_PERIOD_NS
    speed = {
        "sim": sim, "design": top_module, "config": info.get("params"),
        "seed": seed, "effort": effort, "tests": tests, "waves": waves,
        "cycles": int(round(cycles)), "test_wall_s": round(wall, 3),
        "cycles_per_s": round(cycles / wall, 1) if wall > 0 else None,
        "build_s": round(t_build, 3), "run_s": round(t_run, 3),
    }
    if stream_file.is_file():                # written by test_speed (steady streaming)
        stream = json.loads(stream_file.read_text())
        speed["stream_cycles"] = stream["cycles"]
        speed["stream_cycles_per_s"] = stream["cycles_per_s"]
    if waves_file:
        speed["waves_file"] = str(waves_file)
    (build_dir / "speed.json").write_text(json.dumps(speed, indent=2) + "\n")
    return speed


def emit_and_sim(cfg, sim: str, workdir, top="array", name=None, **kwargs):
    """Emit ``cfg`` (``gen.emit.emit``, ``top`` as there) into ``<workdir>/rtl`` and
    :func:`run_sim` it; keyword arguments go to :func:`run_sim`. The result also holds the
    emit time (``emit_s``)."""
    from gen.emit import emit
    t0 = time.perf_counter()
    paths = emit(cfg, Path(workdir) / "rtl", name=name, top=top)
    t_emit = time.perf_counter() - t0
    speed = run_sim(paths["verilog"], paths["manifest"], sim, workdir, **kwargs)
    speed["emit_s"] = round(t_emit, 3)
    return speed


def main(argv=None):
    from gen.cli import DesignArgumentParser, add_design_args, config_from_args, prog_name
    from gen.emit import TOPS
    p = DesignArgumentParser(
        prog=prog_name("tb.runner", "lutcore-sim"),
        description="Simulate a LUT Tensor Core design with its cocotb tests (Icarus or "
                    "Verilator): emit the design options' build and simulate it, or simulate "
                    "existing Verilog given its manifest (--manifest).")
    add_design_args(p)
    s = p.add_argument_group("simulation")
    s.add_argument("--top", default="array", choices=TOPS,
                   help="what to emit and test (as gen.emit --top; default array)")
    s.add_argument("--manifest", metavar="JSON",
                   help="simulate this existing build instead of emitting one (its Verilog: "
                        "--verilog, default the .v next to it); excludes the design options")
    s.add_argument("--verilog", metavar="FILE", action="append",
                   help="Verilog source of the --manifest build (repeatable)")
    s.add_argument("--sim", choices=SIMULATORS, default=os.environ.get("SIM") or "icarus")
    s.add_argument("--out", default="build/sim_cli", metavar="DIR",
                   help="work directory (default build/sim_cli)")
    s.add_argument("--waves", action="store_true", help="dump FST waveforms")
    s.add_argument("--testcase", default=None, help="run only these cocotb tests (comma list)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--effort", choices=("quick", "full"), default=None)
    a = p.parse_args(argv)
    import importlib.util
    if importlib.util.find_spec("cocotb_tools") is None:
        p.exit(1, f"{p.prog}: error: cocotb is not installed (pip install 'lutcore[sim]')\n")
    run = dict(waves=a.waves, testcase=a.testcase, seed=a.seed, effort=a.effort)
    try:
        if a.manifest:
            design = [f"--{k.replace('_', '-')}" for k in
                      ("w_bits", "a_bits", "group", "m", "n", "k_max", "weight_format",
                       "no_symmetric", "precompute")
                      if getattr(a, k) != p.get_default(k)]
            if design or a.top != "array":
                p.error(f"--manifest excludes the design options ({', '.join(design) or '--top'}"
                        f"): the manifest describes the build")
            manifest = Path(a.manifest)
            if not manifest.is_file():
                p.error(f"--manifest {a.manifest!r}: no such file")
            verilog = a.verilog or [manifest.with_suffix(".v")]
            for v in verilog:
                if not Path(v).is_file():
                    p.error(f"--verilog {str(v)!r}: no such file")
            speed = run_sim(list(verilog), manifest, a.sim, a.out, **run)
        else:
            if a.verilog:
                p.error("--verilog needs --manifest")
            cfg = config_from_args(p, a)
            if cfg.precompute and a.top != "engine":
                p.error("--precompute needs --top engine")
            speed = emit_and_sim(cfg, a.sim, a.out, top=a.top, **run)
    except SimulationFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(speed, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
