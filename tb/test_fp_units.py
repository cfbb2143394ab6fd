"""cocotb tests of one emitted FP unit (``hw.fp.lanes.emit_unit``) against ``gen.fp``.

Environment: ``LUTCORE_MANIFEST`` (the emitted manifest), ``LUTCORE_SEED``,
``LUTCORE_FP_VECTORS`` (random operations, default 10^4), ``LUTCORE_FP_SPEED_FILE`` (where the
measured operations per second go). Each simulator step drives every lane at once; the units
are combinational, so a step is: write the wide inputs, wait 1 ns, read the wide output.
"""
from __future__ import annotations

import json
import os
import random
import time

import numpy as np

from gen import fp
from gen.fp import FP32
from gen.fp_vec import fp_dot_vec

SPECIAL_SHARE = 0.05          # fraction of random operands replaced by a special value


def _fmt(params, key):
    return fp.fp_format(params.get(key, "fp16"))


def _operands(rng, fmt, n):
    """n random patterns of ``fmt``: raw bits, a share of specials, near-exponent partners."""
    x = rng.integers(0, 1 << fmt.width, n, dtype=np.uint64)
    sp = np.array(fp.special_values(fmt), dtype=np.uint64)
    pick = rng.random(n) < SPECIAL_SHARE
    x[pick] = rng.choice(sp, int(pick.sum()))
    return x


def _near(rng, fmt, a):
    """Partners of ``a`` with a nearby exponent and either sign: cancellation, rounding ties."""
    delta = rng.integers(-4, 5, len(a)).astype(np.int64) << fmt.man_bits
    delta += rng.integers(-3, 4, len(a)).astype(np.int64) << rng.integers(0, fmt.man_bits, len(a))
    flip = rng.integers(0, 2, len(a)).astype(np.uint64) << np.uint64(fmt.width - 1)
    b = (a.astype(np.int64) + delta) % (1 << fmt.width)
    return b.astype(np.uint64) ^ flip


def special_vectors(unit, params):
    """Every pair of special values (dict of port -> list), for ``unit``."""
    if unit == "int_mul":
        w = params.get("w", 4)
        sp = fp.special_values(_fmt(params, "fmt_in"))
        vals = range(-(1 << (w - 1)), 1 << (w - 1))
        pairs = [(a, v) for a in sp for v in vals]
        return {"a": [a for a, _ in pairs], "v": [v % (1 << w) for _, v in pairs]}
    if unit == "dot":
        fmt_in, g = _fmt(params, "fmt_in"), params.get("g", 4)
        sp, spa = fp.special_values(fmt_in), fp.special_values(FP32)
        rng = random.Random(1)
        cases = [([x] * g, [y] * g, z) for x in sp for y in sp[::4] for z in spa[::12]]
        cases += [([rng.choice(sp) for _ in range(g)], [rng.choice(sp) for _ in range(g)],
                   rng.choice(spa)) for _ in range(500)]
        return _pack_dot(cases, fmt_in)
    fmt = FP32 if unit == "add" else _fmt(params, "fmt_in")
    sp = fp.special_values(fmt)
    return {"a": [a for a in sp for _ in sp], "b": [b for _ in sp for b in sp]}


def _pack_dot(cases, fmt_in):
    w = fmt_in.width
    return {"a": [sum(int(v) << (i * w) for i, v in enumerate(a)) for a, _, _ in cases],
            "b": [sum(int(v) << (i * w) for i, v in enumerate(b)) for _, b, _ in cases],
            "acc": [int(c) for _, _, c in cases]}


def random_vectors(unit, params, seed, n):
    rng = np.random.default_rng(seed)
    if unit == "int_mul":
        w = params.get("w", 4)
        return {"a": _operands(rng, _fmt(params, "fmt_in"), n).tolist(),
                "v": rng.integers(0, 1 << w, n).tolist()}
    if unit == "dot":
        fmt_in, g = _fmt(params, "fmt_in"), params.get("g", 4)
        a = _operands(rng, fmt_in, n * g).reshape(n, g)
        b = _operands(rng, fmt_in, n * g).reshape(n, g)
        if g > 1:                           # half of them: products that nearly cancel
            half, k = rng.random(n) < 0.5, g // 2 * 2
            b[half, 1:k:2] = b[half, 0:k:2]
            a[half, 1:k:2] = _near(rng, fmt_in, a[half, 0:k:2].ravel()).reshape(-1, k // 2)
        acc = _operands(rng, FP32, n)
        return _pack_dot(list(zip(a.tolist(), b.tolist(), acc.tolist())), fmt_in)
    fmt = FP32 if unit == "add" else _fmt(params, "fmt_in")
    a = _operands(rng, fmt, n)
    b = _operands(rng, fmt, n)
    near = rng.random(n) < 0.5
    b[near] = _near(rng, fmt, a[near])
    return {"a": a.tolist(), "b": b.tolist()}


def golden(unit, params, vec):
    """Expected ``out`` for every operation (NumPy fast path for single operations)."""
    if unit == "mul":
        return fp.fp_mul_vec(np.array(vec["a"]), np.array(vec["b"]), _fmt(params, "fmt_in"))
    if unit == "add":
        return fp.fp_add_vec(np.array(vec["a"], np.uint32), np.array(vec["b"], np.uint32))
    if unit == "int_mul":
        w = params.get("w", 4)
        v = np.array(vec["v"])
        return fp.fp_int_mul_vec(np.array(vec["a"]), np.where(v >= 1 << (w - 1), v - (1 << w), v),
                                 _fmt(params, "fmt_in"))
    fmt_in, g = _fmt(params, "fmt_in"), params.get("g", 4)
    a, b, acc = unpack_dot(vec, fmt_in, g)
    # gen.fp_vec.fp_dot_vec: gen.fp.fp_dot for every row at once (checked equal to it in
    # tests/test_fp_vec.py); 10^6 scalar fused sums would take minutes
    return fp_dot_vec(a, b, acc, fmt_in, window=params.get("window"))


def unpack_dot(vec, fmt_in, g):
    """``(a, b, acc)``: the ``n x g`` operand patterns and the ``n`` accumulators of packed
    dot-product vectors (inverse of ``_pack_dot``)."""
    w, mask = fmt_in.width, (1 << fmt_in.width) - 1
    a, b = ([[(x >> (i * w)) & mask for i in range(g)] for x in vec[k]] for k in "ab")
    a, b = (np.array(x, dtype=np.int64).reshape(-1, g) for x in (a, b))
    return a, b, np.array(vec["acc"], dtype=np.int64)


async def drive(dut, manifest, vec):
    """Apply every operation in ``vec`` (``lanes`` per step); return the outputs and the wall
    time of the simulator loop alone."""
    from cocotb.triggers import Timer
    lanes = manifest["lanes"]
    widths = {p["name"]: p["width"] for p in manifest["unit_ports"]}
    inputs = [p["name"] for p in manifest["unit_ports"] if p["direction"] == "input"]
    n = len(vec[inputs[0]])
    steps = -(-n // lanes)
    packed = {}
    for name in inputs:                          # pad to whole steps by repeating operation 0
        vals = list(vec[name]) + [vec[name][0]] * (steps * lanes - n)
        w = widths[name]
        packed[name] = [sum(int(v) << (k * w)
                            for k, v in enumerate(vals[s * lanes:(s + 1) * lanes]))
                        for s in range(steps)]
    ports = [getattr(dut, name) for name in inputs]
    out_port, ow = dut.out, widths["out"]
    outs = []
    t0 = time.perf_counter()
    for s in range(steps):
        for port, name in zip(ports, inputs):
            port.value = packed[name][s]
        await Timer(1, "ns")
        outs.append(int(out_port.value))
    wall = time.perf_counter() - t0
    mask = (1 << ow) - 1
    got = [(word >> (k * ow)) & mask for word in outs for k in range(lanes)][:n]
    return got, wall


def _check(got, want, vec, what):
    want = [int(x) for x in want]
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if bad:
        i = bad[0]
        ops = {k: hex(v[i]) for k, v in vec.items()}
        raise AssertionError(f"{what}: {len(bad)} of {len(want)} differ; first: {ops} -> "
                             f"{got[i]:#x}, golden {want[i]:#x}")


def _env():
    manifest = json.loads(open(os.environ["LUTCORE_MANIFEST"]).read())
    seed = int(os.environ.get("LUTCORE_SEED", "1"))
    n = int(os.environ.get("LUTCORE_FP_VECTORS", "10000"))
    return manifest, seed, n


try:
    import cocotb
except ImportError:                              # imported by pytest for the helpers only
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def test_specials(dut):
        """Every pair (triple for the dot product) of special classes, bit-exact."""
        manifest, _, _ = _env()
        unit, params = manifest["unit"], manifest["params"]
        vec = special_vectors(unit, params)
        got, _ = await drive(dut, manifest, vec)
        _check(got, golden(unit, params, vec), vec, f"{unit} specials")

    @cocotb.test()
    async def test_random(dut):
        """``LUTCORE_FP_VECTORS`` random operations, bit-exact; records operations/second."""
        manifest, seed, n = _env()
        unit, params = manifest["unit"], manifest["params"]
        vec = random_vectors(unit, params, seed, n)
        want = golden(unit, params, vec)
        got, wall = await drive(dut, manifest, vec)
        _check(got, want, vec, f"{unit} random (seed {seed})")
        speed_file = os.environ.get("LUTCORE_FP_SPEED_FILE")
        if speed_file:
            with open(speed_file, "w") as f:
                json.dump({"operations": n, "lanes": manifest["lanes"], "wall_s": wall,
                           "ops_per_s": n / wall if wall else None}, f)


def run_fp_sim(unit, params, sim, workdir, *, lanes=16, vectors=10_000, seed=None, cls=None):
    """Emit ``lanes`` copies of ``unit`` (``cls`` overrides the class, e.g. a mutant), build it
    for ``sim`` and run this module's cocotb tests; raise AssertionError on any failure.

    Returns the measured speed: ``ops_per_s`` through cocotb (random test, simulator loop
    only), ``build_s`` and ``run_s``.
    """
    from pathlib import Path

    from hw.fp.lanes import emit_unit
    from tb.runner import run_sim

    seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed
    workdir = Path(workdir).resolve()
    res = emit_unit(unit, params, workdir / "rtl", lanes=lanes, cls=cls)
    speed_file = workdir / f"sim_{sim}" / "fp_speed.json"
    speed_file.unlink(missing_ok=True)
    run = run_sim(res["verilog"], res["manifest"], sim, workdir, seed=seed,
                  test_module="tb.test_fp_units",
                  extra_env={"LUTCORE_FP_VECTORS": vectors, "LUTCORE_FP_SPEED_FILE": speed_file})
    if run["tests"] != 2:
        raise AssertionError(f"{sim} {res['name']}: {run['tests']} cocotb tests ran, not 2")
    speed = json.loads(speed_file.read_text())
    speed.update(build_s=run["build_s"], run_s=run["run_s"], sim=sim, name=res["name"],
                 seed=seed)
    return speed
