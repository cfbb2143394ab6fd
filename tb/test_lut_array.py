"""cocotb tests of the emitted LUT array (``LutArray``), checked bit-exactly against gen.golden.

The design is whatever Verilog the simulator was built from; everything the tests know about
it comes from its emit manifest: the configuration (``LutConfig.from_dict``, which the golden
model and the packing use) and the ports (each one's width is checked against the DUT, and the
valid/ready streams found among them are driven). Environment (``tb.runner.run_sim`` passes all
of them to the simulator):

* ``LUTCORE_MANIFEST`` -- path of the design's JSON manifest (``gen.emit`` writes one; RTL of
  your own needs one of the same form: ``name``, ``top``, ``params``, ``ports``).
* ``LUTCORE_SEED`` -- base seed (default: cocotb's ``COCOTB_RANDOM_SEED``); every test derives
  its own generator from it and its name, and logs it; failures repeat it.
* ``LUTCORE_EFFORT`` -- ``quick`` (default: few operations, small K) or ``full``.
"""
from __future__ import annotations

import functools
import json
import os
import random
import zlib

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from gen.config import LutConfig, WeightFormat
from gen.golden import mac_stream, random_activations, random_weights, tile_stream, unpack_results
from tb.scoreboard import Scoreboard
from tb.streams import TB, StreamMonitor, random_pauses, stream_ports


@functools.cache
def load_manifest():
    path = os.environ.get("LUTCORE_MANIFEST")
    if not path:
        raise RuntimeError("LUTCORE_MANIFEST must name the JSON manifest of the design")
    with open(path) as f:
        return json.load(f)


def load_config():
    """The design's config: a MacConfig for a MAC top emitted from one (it has no table
    parameters, and its g may exceed LutConfig's range), else a LutConfig."""
    manifest = load_manifest()
    if manifest.get("top", "").startswith("mac_") and "symmetric" not in manifest["params"]:
        from gen.mac_config import MacConfig
        return MacConfig.from_dict(manifest)
    return LutConfig.from_dict(manifest)


def check_ports(dut, manifest):
    """Every port of the manifest exists on the DUT with the manifest's width."""
    for port in manifest["ports"]:
        handle = getattr(dut, port["name"], None)
        assert handle is not None, f"the DUT has no port {port['name']} (manifest: {port})"
        assert len(handle) == port["width"], \
            f"{port['name']} is {len(handle)} bits wide, the manifest says {port['width']}"


def result_scoreboard(cfg, log, seed):
    """A scoreboard of result rows: each beat is one row of n results (gen.golden layout)."""
    return Scoreboard(decode=lambda raw: unpack_results(cfg, [raw])[0], beat_shape=(cfg.n,),
                      log=log, seed=seed)


@functools.cache
def base_seed():
    """The run's base seed (one value per simulation, also when drawn at random)."""
    for var in ("LUTCORE_SEED", "COCOTB_RANDOM_SEED"):
        if os.environ.get(var, "").strip():
            return int(os.environ[var])
    return random.SystemRandom().randrange(1 << 31)


def effort():
    e = os.environ.get("LUTCORE_EFFORT", "quick").strip() or "quick"
    if e not in ("quick", "full"):
        raise RuntimeError(f"LUTCORE_EFFORT must be quick or full, not {e!r}")
    return e


class LutEnv:
    """TB + scoreboard + operation helpers for one cocotb test."""

    def __init__(self, dut, test_name):
        self.dut = dut
        self.log = dut._log
        self.cfg = load_config()
        self.seed = base_seed()
        self.test_name = test_name
        sub = zlib.crc32(test_name.encode())
        self.rng = np.random.default_rng([self.seed, sub])
        self.prng = random.Random(self.seed * 7919 + sub)
        self.full = effort() == "full"
        # The same tests drive the MAC baselines (gen.emit --top mac_dequant|mac_direct): their
        # per-group operand stream is i_act (activations) instead of i_table, and their weight
        # stream carries one beat of whole codes per group instead of w bit-planes. The source
        # attribute keeps the name `table` for both.
        manifest = load_manifest()
        self.top = manifest.get("top", "array")
        self.mac = self.top.startswith("mac")
        self.tb = TB(dut, stream_ports(manifest["ports"]),
                     roles={"cmd": "i_cmd", "table": "i_act" if self.mac else "i_table",
                            "weight": "i_weight", "result": "o_result"})
        self.sb = result_scoreboard(self.cfg, self.log, self.seed)
        self.tb.result.add_callback(self.sb.on_beat)
        self.ops = []                 # per operation: dict(label, weight_beats, exp)
        self.log.info("%s: config %s, LUTCORE_SEED=%d, effort %s", test_name, self.cfg.name,
                      self.seed, "full" if self.full else "quick")
        self._check_ports()

    def _check_ports(self):
        check_ports(self.dut, load_manifest())
        c = self.cfg
        want = {"i_cmd__payload": c.cmd_width,
                "o_result__payload": c.result_row_width}
        if self.mac:
            want.update({"i_act__payload": c.act_width, "i_weight__payload": c.code_width})
        else:
            want.update({"i_table__payload": c.table_width, "i_weight__payload": c.weight_width})
        for port, width in want.items():
            got = len(getattr(self.dut, port))
            assert got == width, f"{port} is {got} bits wide, the config says {width}"

    # -- operations -------------------------------------------------------------------------
    def k_small(self):
        """Upper end of the random reduction lengths (small: simulations stay short)."""
        return min(self.cfg.k_max, (6 if self.full else 3) * self.cfg.g)

    def send_op(self, a, w, fmt, w_bits, label=None):
        """Queue one operation (command, tables, weight planes) and its expected tile."""
        fmt = WeightFormat.parse(fmt)
        stream = mac_stream if self.mac else tile_stream
        cmd, tables, planes, expected = stream(self.cfg, a, w, fmt, w_bits)
        label = label or f"{fmt.label} w{w_bits} K={a.shape[1]}"
        self.tb.cmd.send_nowait(cmd)
        self.tb.table.send_nowait(tables)
        self.tb.weight.send_nowait(planes)
        op = self.sb.expect(expected, label)
        self.ops.append({"label": label, "weight_beats": len(planes), "table_beats": len(tables),
                         "exp": op})
        return op

    def random_op(self, fmt, w_bits, k=None, label=None):
        k = k if k is not None else int(self.rng.integers(1, self.k_small() + 1))
        a = random_activations(self.rng, (self.cfg.m, k), self.cfg.a_bits)
        w = random_weights(self.rng, (k, self.cfg.n), fmt, w_bits)
        return self.send_op(a, w, fmt, w_bits, label)

    # -- waiting ------------------------------------------------------------------------------
    def _state(self):
        tb = self.tb
        return (f"edge {tb.cycle}: transfers cmd {len(tb.cmd.transfers)}, "
                f"table {len(tb.table.transfers)}, weight {len(tb.weight.transfers)}, "
                f"result {len(tb.result.transfers)}; queued cmd {len(tb.cmd)}, "
                f"table {len(tb.table)}, weight {len(tb.weight)}; "
                f"rows outstanding {self.sb.outstanding}")

    async def wait_done(self, timeout=None, settle=None):
        """Wait until every queued beat went in and every expected row came out, then a few
        more cycles (no stray rows may follow), and check ``o_busy`` is low."""
        tb = self.tb
        if timeout is None:
            beats = len(tb.weight) + len(tb.table) + len(tb.cmd) + self.sb.outstanding
            timeout = 200 + 20 * beats
        start = tb.cycle
        edge = RisingEdge(tb.clk)
        while not (tb.sources_idle() and self.sb.idle()):
            if tb.cycle - start > timeout:
                raise AssertionError(f"timeout after {timeout} cycles: {self._state()} "
                                     f"[seed {self.seed}]")
            await edge
        for _ in range(settle if settle is not None else self.cfg.m + 3):
            await edge
        self.sb.finish()
        busy = self.dut.o_busy.value
        assert busy.is_resolvable and int(busy) == 0, \
            f"o_busy is {busy} with no operation left ({self._state()}) [seed {self.seed}]"

    async def start(self):
        await self.tb.reset()
        return self


def lut_test(**kwargs):
    """``cocotb.test`` that logs the seed again when the test fails."""
    def wrap(fn):
        @functools.wraps(fn)
        async def run(dut):
            try:
                await fn(dut)
            except Exception:
                dut._log.error("%s failed; repeat with LUTCORE_SEED=%d", fn.__name__,
                               base_seed())
                raise
        return cocotb.test(**kwargs)(run)
    return wrap


def _shuffled_ops(env, repeat):
    ops = [op for op in env.cfg.ops() for _ in range(repeat)]
    env.prng.shuffle(ops)
    return ops


# -- tests --------------------------------------------------------------------------------------

@lut_test()
async def test_random_ops(dut):
    """Random operations over every (format, w) the build runs, in shuffled order, so the
    runtime precision changes from one operation to the next (w = 1 .. w_bits on one build)."""
    env = await LutEnv(dut, "test_random_ops").start()
    cfg = env.cfg
    # the runtime precision swept up and down on this one build, back to back
    for fmt in cfg.formats:
        ws = [w for w in range(1, cfg.w_bits + 1) if fmt.allows(w)]
        if len(ws) > 1:
            for w in ws + ws[::-1]:
                env.random_op(fmt, w)
    for fmt, w in _shuffled_ops(env, 8 if env.full else 2):
        env.random_op(fmt, w)
    await env.wait_done()
    env.log.info("%d operations, %d rows exact", len(env.ops), env.sb.beats_checked)


def _extreme_weights(cfg, fmt, w_bits, k):
    """Weight tiles at the corners of a format: code 0, all-ones code, min and max value."""
    lo, hi = fmt.value_range(w_bits)
    tiles = {}
    if fmt is WeightFormat.INT:
        tiles["code0"] = lo                       # q = s + 2^(w-1) = 0
        tiles["code1s"] = hi                      # q = 2^w - 1
    elif fmt is WeightFormat.UINT:
        tiles["code0"], tiles["code1s"] = 0, hi
    elif fmt is WeightFormat.BINARY:
        tiles["code0"], tiles["code1s"] = -1, 1
    else:                                         # ternary: codes 1..3, value 0 = code 2
        tiles["zero"] = 0
    tiles["min"], tiles["max"] = lo, hi
    seen, out = set(), []
    for name, v in tiles.items():
        if v not in seen:
            seen.add(v)
            out.append((name, np.full((k, cfg.n), v, dtype=np.int64)))
    # alternating corners by column, so the columns of one row differ
    alt = np.where(np.arange(cfg.n)[None, :] % 2 == 0, lo, hi).repeat(k, axis=0)
    out.append(("alt", alt))
    return out


@lut_test()
async def test_extremes(dut):
    """Corner values: activations all at the minimum / maximum (and by-column alternating),
    weights of all-zero and all-ones codes and the format's min / max value. The reduction is
    k_max when that is short enough to simulate, so the accumulator reaches its full range."""
    env = await LutEnv(dut, "test_extremes").start()
    cfg = env.cfg
    amin, amax = -(1 << (cfg.a_bits - 1)), (1 << (cfg.a_bits - 1)) - 1
    k_full = cfg.k_max if cfg.groups_max * cfg.w_bits <= (256 if env.full else 48) else None
    k = k_full or min(cfg.k_max, 2 * cfg.g + 1)
    acts = {"amin": np.full((cfg.m, k), amin), "amax": np.full((cfg.m, k), amax)}
    if env.full:
        acts["alt"] = np.where(np.arange(k)[None, :] % 2 == 0, amin, amax).repeat(cfg.m, 0)
        acts["zero"] = np.zeros((cfg.m, k), dtype=np.int64)
    for fmt, w in cfg.ops():
        for wname, wt in _extreme_weights(cfg, fmt, w, k):
            for aname, a in acts.items():
                env.send_op(a.astype(np.int64), wt, fmt, w,
                            label=f"{fmt.label} w{w} K={k} {aname} x {wname}")
    await env.wait_done()
    env.log.info("%d corner operations at K=%d exact", len(env.ops), k)


@lut_test()
async def test_odd_k(dut):
    """Reductions that are not a multiple of g: the last group is zero-padded."""
    env = await LutEnv(dut, "test_odd_k").start()
    g = env.cfg.g
    ks = sorted({k for k in (1, g - 1, g + 1, 2 * g - 1, 2 * g + 1, 3 * g + g // 2)
                 if 1 <= k <= env.cfg.k_max and k % g})
    if not ks:
        env.log.warning("k_max = %d leaves no odd K to test", env.cfg.k_max)
    ops = env.cfg.ops()
    for i, k in enumerate(ks):
        picks = ops if env.full else [ops[(i + j) % len(ops)] for j in range(2)]
        for fmt, w in picks:
            env.random_op(fmt, w, k=k)
    await env.wait_done()
    env.log.info("odd K %s: %d operations exact", ks, len(env.ops))


@lut_test()
async def test_back_to_back(dut):
    """Sources never pause and the sink is always ready.

    Phase 1 (operations of at least m + 1 planes): every weight beat from the first to the
    last goes in on consecutive edges (one bit-plane per cycle), the next command is taken on
    the edge of the current operation's last plane, and row r of an operation leaves r + 1
    edges after its last plane (plus ``pipeline_latency`` when pipelined). Phase 2:
    operations shorter than the drain (down to one plane) back to back, limited by the output
    buffer but still exact.
    """
    env = await LutEnv(dut, "test_back_to_back").start()
    cfg, tb = env.cfg, env.tb
    tb.set_pauses(None, None)
    # a pipelined build (LutConfig.pipeline) delivers each row this many edges later, and its
    # output buffer is free again that much later: phase 1 needs that many more planes
    extra = getattr(cfg, "pipeline_latency", 0)
    # phase 1
    plan = []
    for fmt, w in _shuffled_ops(env, 3 if env.full else 1):
        beats_per_group = 1 if env.mac else w
        groups_min = -(-(cfg.m + 1 + extra) // beats_per_group)
        if groups_min > cfg.groups_max:
            continue
        hi = min(cfg.groups_max, groups_min + 2)
        groups = int(env.rng.integers(groups_min, hi + 1))
        k = min(cfg.k_max, groups * cfg.step_k) - int(env.rng.integers(0, cfg.step_k))
        k = max(k, (groups - 1) * cfg.step_k + 1)
        plan.append((fmt, w, k))
    if plan:
        first = len(env.ops)
        for fmt, w, k in plan:
            env.random_op(fmt, w, k=k)
        await env.wait_done()
        ops = env.ops[first:]
        wcyc = [t.cycle for t in tb.weight.transfers]
        gaps = [i for i in range(1, len(wcyc)) if wcyc[i] != wcyc[i - 1] + 1]
        assert not gaps, (f"weight beats not back to back: gaps after beats {gaps[:10]} "
                          f"(edges {[wcyc[i - 1:i + 1] for i in gaps[:5]]}) "
                          f"[seed {env.seed}]")
        ccyc = [t.cycle for t in tb.cmd.transfers]
        last = np.cumsum([op["weight_beats"] for op in ops]) - 1
        for i, op in enumerate(ops):
            lp = wcyc[last[i]]
            rows = op["exp"].cycles
            want = [lp + 1 + extra + r for r in range(cfg.m)]
            assert rows == want, (f"op {i} ({op['label']}): rows at edges {rows}, "
                                  f"expected {want} (last plane at edge {lp}) [seed {env.seed}]")
            if i + 1 < len(ops):
                assert ccyc[i + 1] == lp, (f"command {i + 1} taken at edge {ccyc[i + 1]}, not "
                                           f"on op {i}'s last plane (edge {lp}) "
                                           f"[seed {env.seed}]")
        n_beats = len(wcyc)
        span = wcyc[-1] - wcyc[0] + 1
        env.log.info("phase 1: %d operations, %d weight beats in %d cycles (%.3f beats/cycle)",
                     len(ops), n_beats, span, n_beats / span)
    else:
        env.log.warning("k_max too small for operations of m + 1 planes: phase 1 skipped")
    # phase 2: short operations, drain-limited
    for _ in range(6 if env.full else 3):
        for fmt, w in env.prng.sample(cfg.ops(), min(2, len(cfg.ops()))):
            env.random_op(fmt, w, k=int(env.rng.integers(1, cfg.g + 1)))
    await env.wait_done()
    env.log.info("%d operations back to back exact", len(env.ops))


@lut_test()
async def test_backpressure(dut):
    """Random pauses on all three sources and random back-pressure on the result sink, then
    a phase where the sink is nearly always stalled (the output buffer must hold)."""
    env = await LutEnv(dut, "test_backpressure").start()
    tb, prng = env.tb, env.prng
    for p_src, p_sink in ((0.3, 0.3), (0.6, 0.1), (0.1, 0.85)):
        tb.set_pauses(lambda p=p_src: random_pauses(prng, p), random_pauses(prng, p_sink))
        for fmt, w in _shuffled_ops(env, 2 if env.full else 1):
            env.random_op(fmt, w)
        await env.wait_done(timeout=4000)
    env.log.info("%d operations under back-pressure exact", len(env.ops))


async def _wait_until(env, cond, limit, what):
    edge = RisingEdge(env.tb.clk)
    for _ in range(limit):
        if cond():
            return
        await edge
    raise AssertionError(f"timeout waiting for {what}: {env._state()} [seed {env.seed}]")


@lut_test()
async def test_reset_mid_op(dut):
    """Reset in the middle of an operation drops it; the next operation is exact.

    Three places: after some weight planes; after the command only; while result rows of a
    finished operation wait behind a stalled sink. After each reset no stray row may appear
    and ``o_busy`` must be low.
    """
    env = await LutEnv(dut, "test_reset_mid_op").start()
    cfg, tb, sb = env.cfg, env.tb, env.sb
    ops = cfg.ops()
    k_long = min(cfg.k_max, 3 * cfg.g)

    async def reset_and_check(label):
        await tb.reset()
        sb.drop_pending()
        tb.set_pauses(None, None)
        for _ in range(cfg.m + 3):
            await RisingEdge(tb.clk)
        assert not sb.errors, sb.errors[0]
        busy = dut.o_busy.value
        assert busy.is_resolvable and int(busy) == 0, \
            f"o_busy is {busy} after reset ({label}) [seed {env.seed}]"
        env.log.info("reset %s: dropped", label)

    # 1. a clean operation, then one cut after some weight planes
    env.random_op(*ops[0])
    await env.wait_done()
    fmt, w = max(ops, key=lambda o: o[1])
    env.random_op(fmt, w, k=k_long)
    n0 = len(tb.weight.transfers)
    total = env.ops[-1]["weight_beats"]
    cut = max(1, total // 2)
    await _wait_until(env, lambda: len(tb.weight.transfers) - n0 >= min(cut, total - 1)
                      if total > 1 else len(tb.cmd.transfers) >= len(env.ops), 500,
                      "the operation to start")
    await reset_and_check(f"after {len(tb.weight.transfers) - n0} of {total} planes")
    env.random_op(*ops[-1])
    await env.wait_done()

    # 2. cut after the command (tables may or may not have gone in)
    env.random_op(*ops[len(ops) // 2], k=k_long)
    tb.weight.set_pause_generator(iter(lambda: True, None))          # hold the planes back
    nc = len(tb.cmd.transfers)
    await _wait_until(env, lambda: len(tb.cmd.transfers) > nc, 500, "the command")
    await reset_and_check("after the command")
    for fmt, w in ops[:2]:
        env.random_op(fmt, w)
    await env.wait_done()

    # 3. cut while finished rows wait behind a stalled sink
    tb.result.set_pause_generator(iter(lambda: True, None))          # never ready
    env.random_op(*ops[0])
    await _wait_until(env, lambda: env.tb.sources_idle(), 1000, "all inputs to go in")
    # a pipelined build (LutConfig.pipeline) delivers its first row this many edges later
    for _ in range(4 + getattr(env.cfg, "pipeline_latency", 0)):
        await RisingEdge(tb.clk)
    valid = dut.o_result__valid.value
    assert valid.is_resolvable and int(valid) == 1, \
        f"no result row waiting before the reset ({env._state()}) [seed {env.seed}]"
    await reset_and_check("with rows waiting")
    env.random_op(*ops[-1])
    await env.wait_done()
    env.log.info("%d operations after resets exact", len(sb.done))


@lut_test()
async def test_stream_api(dut):
    """The drivers' cocotbext-axi-shaped API on one operation: awaited ``send``, a passive
    :class:`StreamMonitor` on the weight stream (in its own task), ``wait`` until every source
    is idle, ``recv`` of the result rows (which must equal the golden tile), and a ``wait``
    with a timeout that finds nothing more."""
    env = await LutEnv(dut, "test_stream_api").start()
    cfg, tb = env.cfg, env.tb
    mon = StreamMonitor(dut, "i_weight", tb.clk, tb.counter, rst=tb.rst).start()
    fmt, w = cfg.ops()[-1]
    k = min(cfg.k_max, 2 * cfg.g + 1)
    a = random_activations(env.rng, (cfg.m, k), cfg.a_bits)
    wt = random_weights(env.rng, (k, cfg.n), fmt, w)
    cmd, tables, planes, expected = (mac_stream if env.mac else tile_stream)(cfg, a, wt, fmt, w)
    env.sb.expect(expected, "stream api")
    await tb.cmd.send(cmd)
    await tb.table.send(tables)
    await tb.weight.send(planes)
    for src in (tb.cmd, tb.table, tb.weight):
        await src.wait()
        assert src.idle() and src.empty() and src.count() == 0, src.name
    rows = [await tb.result.recv() for _ in range(cfg.m)]
    assert (unpack_results(cfg, [t.data for t in rows]) == expected).all()
    await tb.result.wait(timeout=20 * 10, unit="ns")          # 20 cycles: no further row
    assert tb.result.empty() and tb.result.count() == 0 and tb.result.idle()
    assert [t.data for t in mon.transfers] == [int(p) for p in planes]
    assert [t.cycle for t in mon.transfers] == [t.cycle for t in tb.weight.transfers]
    assert mon.count() == len(planes) and mon.recv_nowait().data == int(planes[0])
    mon.stop()
    await env.wait_done()


@lut_test()
async def test_speed(dut):
    """Streaming speed of simulator + testbench: long operations back to back, golden results
    computed before the clock runs, sink always ready. Checks the results like every test and
    writes simulated cycles per wall-second to ``LUTCORE_SPEED_FILE`` (if set)."""
    import time
    env = await LutEnv(dut, "test_speed").start()
    cfg, tb = env.cfg, env.tb
    tb.set_pauses(None, None)
    fmt, w = max(cfg.ops(), key=lambda o: (o[1], o[0] is WeightFormat.INT))
    target = 4000 if env.full else 800           # weight beats, about one per cycle
    groups = max(1, min(cfg.groups_max, 16 // w))
    k = min(cfg.k_max, groups * cfg.step_k)
    beats = -(-k // cfg.step_k) * w
    for _ in range(max(1, target // beats)):
        env.random_op(fmt, w, k=k)
    c0, t0 = tb.cycle, time.perf_counter()
    await env.wait_done(settle=2)
    cycles, wall = tb.cycle - c0, time.perf_counter() - t0
    speed = {"cycles": cycles, "wall_s": round(wall, 4),
             "cycles_per_s": round(cycles / wall, 1) if wall > 0 else None,
             "operations": len(env.ops), "weight_beats": len(tb.weight.transfers)}
    env.log.info("speed: %d cycles in %.3f s = %.0f cycles/s (%d operations of %s w%d K=%d)",
                 cycles, wall, cycles / wall, len(env.ops), fmt.label, w, k)
    out = os.environ.get("LUTCORE_SPEED_FILE")
    if out:
        with open(out, "w") as f:
            json.dump(speed, f, indent=2)
