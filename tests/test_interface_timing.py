# amaranth: UnusedElaboratable=no
"""The timing and padding rules of docs/interface.md, checked edge by edge in amaranth.sim.

One testbench drives the three input streams and the result sink of a ``LutArray`` and records,
for every rising edge, which streams transfer. Against that trace:

* the example timing table of docs/interface.md is parsed and must equal a simulated run;
* the last-plane rule ``L_k = max(F_k + groups_k * w_k - 1, L_{k-1} + m)`` (always-valid
  sources, always-ready sink) must hold for random back-to-back operations, and deliberately
  wrong variants of it must not;
* the handshake equations of docs/interface.md (a model of the ready/valid outputs from the
  documented state) must predict every ``ready`` and ``o_result__valid`` of the array, cycle by
  cycle, while sources pause, withdraw ``valid`` without a transfer and drive garbage payloads;
* padded K positions: any weight code there gives the same results, any nonzero padded
  activation does not; ``groups`` up to ``groups_max`` (K up to ``k_pad``) is exact.
"""
import random
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.config import LutConfig, WeightFormat, signed_width
from gen.golden import (pack_cmd, pack_tables, pack_weight_planes, random_activations,
                        random_weights, reference_mpgemm, unpack_results)
from hw.lut_array import LutArray

DOC = Path(__file__).resolve().parent.parent / "docs" / "interface.md"


# -- the documented handshake, as a model ---------------------------------------------------------

class DocumentedHandshake:
    """The state and ready/valid equations that docs/interface.md (section *Timing*) states."""

    def __init__(self, cfg):
        self.m = cfg.m
        self.active = False           # a command was taken and its last plane not yet
        self.table_full = False       # the table register holds one group's m tables
        self.w = self.groups = self.group = self.plane = 0
        self.rows_left = 0            # rows of the output buffer not yet delivered

    def outputs(self, cmd_valid, table_valid, weight_valid, result_ready):
        """(i_cmd ready, i_table ready, i_weight ready, o_result valid, o_busy)."""
        last = self.active and self.group == self.groups - 1 and self.plane == 0
        out_free = self.rows_left == 0 or (self.rows_left == 1 and result_ready)
        weight_ready = self.active and self.table_full and (not last or out_free)
        group_end = weight_valid and weight_ready and self.plane == 0
        table_ready = not self.table_full or group_end
        cmd_ready = not self.active or (group_end and self.group == self.groups - 1)
        busy = self.active or self.rows_left > 0
        return cmd_ready, table_ready, weight_ready, self.rows_left > 0, busy

    def edge(self, fire, cmd):
        """Apply one rising edge; ``fire`` names the streams that transfer on it."""
        if fire["result"]:
            self.rows_left -= 1
        if fire["weight"]:
            if self.plane == 0:
                self.table_full = False
                if self.group == self.groups - 1:
                    self.active = False
                    self.rows_left = self.m
                self.group += 1
                self.plane = self.w - 1
            else:
                self.plane -= 1
        if fire["table"]:
            self.table_full = True
        if fire["cmd"]:
            self.active = True
            self.w, self.groups = cmd
            self.group, self.plane = 0, cmd[0] - 1


# -- one simulated run, recorded edge by edge ---------------------------------------------------

def make_ops(cfg, ops, rng, pad_codes=False, pad_acts=False):
    """Beats and expected results for ``ops`` = [(fmt, w, K)].

    ``pad_codes``: random bits in the padded K positions of every weight plane;
    ``pad_acts``: tables built with random (nonzero) activations in the padded positions."""
    out = []
    for fmt, w, k in ops:
        a = random_activations(rng, (cfg.m, k), cfg.a_bits)
        wt = random_weights(rng, (k, cfg.n), fmt, w)
        groups = -(-k // cfg.g)
        tables = pack_tables(cfg, a)
        if pad_acts and k % cfg.g:
            a_pad = np.concatenate([a, random_activations(rng, (cfg.m, groups * cfg.g - k),
                                                          cfg.a_bits) | 1], axis=1)
            tables = pack_tables(cfg, a_pad)
        planes = pack_weight_planes(cfg, wt, fmt, w)
        if pad_codes and k % cfg.g:
            pad_mask = sum(((1 << cfg.g) - (1 << (k % cfg.g))) << (c * cfg.g)
                           for c in range(cfg.n))
            planes = planes[:-w] + [p | (int(rng.integers(1 << cfg.weight_width)) & pad_mask)
                                    for p in planes[-w:]]
        out.append({"cmd": pack_cmd(cfg, fmt, w, groups), "w": w, "groups": groups,
                    "tables": tables, "planes": planes, "expected": reference_mpgemm(a, wt)})
    return out


def simulate(cfg, ops, seed=0, gap=0.0, stall=0.0, delay=None, check_model=False,
             model_cls=DocumentedHandshake):
    """Run ``ops`` (from :func:`make_ops`) back to back through a ``LutArray``.

    Each cycle a source offers its next beat with probability ``1 - gap`` (else ``valid`` is 0
    and the payload random garbage: ``valid`` may so drop without a transfer), and the sink is
    ready with probability ``1 - stall``. ``delay`` = {stream: cycles} holds a source back at
    the start. Returns ({stream: [edges of its transfers]}, results per op)."""
    pace = random.Random(seed)
    dut = LutArray(cfg)
    model = model_cls(cfg)
    ports = {"cmd": dut.i_cmd, "table": dut.i_table, "weight": dut.i_weight}
    queues = {"cmd": [(op["cmd"], (op["w"], op["groups"])) for op in ops],
              "table": [(t, None) for op in ops for t in op["tables"]],
              "weight": [(p, None) for op in ops for p in op["planes"]]}
    delay = delay or {}
    edges = {"cmd": [], "table": [], "weight": [], "result": [], "weight_ready": []}
    got = []
    mismatches = []
    held = []          # o_result payloads that were valid but not taken: must be held

    limit = 100 + 20 * sum(len(q) for q in queues.values())

    async def testbench(ctx):
        edge = 0
        while len(got) < cfg.m * len(ops):
            assert edge < limit, "no progress"
            valid = {}
            for name, port in ports.items():
                valid[name] = (bool(queues[name]) and edge >= delay.get(name, 0)
                               and pace.random() >= gap)
                ctx.set(port.valid, valid[name])
                ctx.set(port.payload, queues[name][0][0] if valid[name]
                        else pace.getrandbits(len(port.payload)))
            ready = pace.random() >= stall
            ctx.set(dut.o_result.ready, ready)
            fire = {name: valid[name] and bool(ctx.get(port.ready))
                    for name, port in ports.items()}
            fire["result"] = ready and bool(ctx.get(dut.o_result.valid))
            edges["weight_ready"].append(int(ctx.get(dut.i_weight.ready)))
            if held:
                assert ctx.get(dut.o_result.valid) and ctx.get(dut.o_result.payload) == held[0], \
                    f"o_result dropped or changed a row before its transfer (edge {edge})"
                held.clear()
            if ctx.get(dut.o_result.valid) and not ready:
                held.append(ctx.get(dut.o_result.payload))
            if check_model:
                want = model.outputs(valid["cmd"], valid["table"], valid["weight"], ready)
                have = (ctx.get(dut.i_cmd.ready), ctx.get(dut.i_table.ready),
                        ctx.get(dut.i_weight.ready), ctx.get(dut.o_result.valid),
                        ctx.get(dut.o_busy))
                if tuple(map(bool, have)) != tuple(want):
                    mismatches.append((edge, have, want))
                model.edge(fire, queues["cmd"][0][1] if fire["cmd"] else None)
            if fire["result"]:
                got.append(ctx.get(dut.o_result.payload))
            for name, happened in fire.items():
                if happened:
                    edges[name].append(edge)
                    if name in queues:
                        queues[name].pop(0)
            await ctx.tick()
            edge += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert not mismatches, f"documented handshake differs (edge, array, doc): {mismatches[:5]}"
    return edges, unpack_results(cfg, got).reshape(len(ops), cfg.m, cfg.n)


def assert_exact(results, ops):
    for i, op in enumerate(ops):
        assert (results[i] == op["expected"]).all(), f"operation {i}"


# -- the example table of docs/interface.md ------------------------------------------------------

def doc_timing_table():
    """The table between the ``timing-example`` markers: {row name: {edge: token}}."""
    text = DOC.read_text()
    body = re.search(r"<!-- timing-example -->(.*?)<!-- /timing-example -->", text, re.DOTALL)
    assert body, "docs/interface.md lost its timing example"
    rows = [[c.strip(" `") for c in line.strip().strip("|").split("|")]
            for line in body.group(1).splitlines() if line.strip().startswith("|")]
    header = rows[0]
    assert header[0] == "edge"
    edge_of = [int(h) for h in header[1:]]
    table = {}
    for row in rows[2:]:                      # rows[1] is the |---| line
        table[row[0]] = {e: tok for e, tok in zip(edge_of, row[1:]) if tok}
    return table


def test_documented_timing_example():
    """m = 3; op 0: int, w = 2, groups = 2; op 1: int, w = 1, groups = 2 (shorter than m)."""
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=3, n=2, k_max=64)
    ops = make_ops(cfg, [("int", 2, 8), ("int", 1, 8)], np.random.default_rng(1))
    edges, results = simulate(cfg, ops, check_model=True)
    assert_exact(results, ops)
    doc = doc_timing_table()
    for name, row in (("cmd", "i_cmd"), ("table", "i_table"), ("weight", "i_weight"),
                      ("result", "o_result")):
        assert sorted(doc[row]) == edges[name], (row, doc[row], edges[name])
    ready = doc["i_weight__ready"]
    assert [int(ready[e]) for e in sorted(ready)] == edges["weight_ready"][:len(ready)]
    # op 1's last plane is offered but waits for the drain on a documented edge
    assert any(ready[e] == "0" and 0 < e < edges["weight"][-1] for e in ready)


# -- first transfers -------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd_delay, table_delay", [(0, 0), (3, 0), (0, 3), (2, 5)])
def test_first_weight_follows_command_and_table(cmd_delay, table_delay):
    """The first table may go before the command; the first weight goes one edge after both."""
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2, k_max=16)
    ops = make_ops(cfg, [("uint", 2, 8)], np.random.default_rng(2))
    edges, results = simulate(cfg, ops, delay={"cmd": cmd_delay, "table": table_delay},
                              check_model=True)
    assert_exact(results, ops)
    assert edges["cmd"] == [cmd_delay] and edges["table"][0] == table_delay
    assert edges["weight"][0] == max(cmd_delay, table_delay) + 1


# -- the last-plane rule ---------------------------------------------------------------------------

def last_plane_edges(edges, ops):
    """(first beat F_k, last plane L_k) of every operation, from the weight transfer edges."""
    out, i = [], 0
    for op in ops:
        beats = op["groups"] * op["w"]
        out.append((edges["weight"][i], edges["weight"][i + beats - 1]))
        i += beats
    return out


def documented_last_plane(start, beats, prev_last, m):
    """``L_k = max(E_k + beats - 1, L_{k-1} + m)``; the first operation has no drain to wait for."""
    return start + beats - 1 if prev_last is None else max(start + beats - 1, prev_last + m)


@pytest.mark.parametrize("cfg", [
    LutConfig(w_bits=4, a_bits=8, g=4, m=4, n=2, k_max=32),
    LutConfig(w_bits=2, a_bits=6, g=3, m=3, n=1, k_max=20, symmetric=False),
    LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2, k_max=16),
    LutConfig(w_bits=1, a_bits=4, g=2, m=1, n=3, k_max=8),
], ids=lambda c: c.name)
def test_last_plane_rule(cfg):
    """Always-valid sources, always-ready sink, random back-to-back operations, some of them
    shorter than the drain (groups * w < m): one plane or two (K = g + 1 at w = 1)."""
    rng = np.random.default_rng(cfg.m)
    ops = cfg.ops()
    spec = [(f.label, w, int(rng.integers(1, cfg.k_max + 1)))
            for f, w in (ops[i] for i in rng.integers(len(ops), size=12))]
    spec += [(ops[0][0].label, 1, k) for k in (1, 1, cfg.g + 1, 1, cfg.g + 1, cfg.g + 1)]
    ops = make_ops(cfg, spec, rng)
    edges, results = simulate(cfg, ops)
    assert_exact(results, ops)
    spans = last_plane_edges(edges, ops)
    beats = [op["groups"] * op["w"] for op in ops]
    # E_k: the edge on which operation k's first beat may go
    starts = [1] + [last + 1 for _, last in spans[:-1]]

    def rule_holds(rule, firsts):
        prev = None
        for first, (_, last), b in zip(firsts, spans, beats):
            if last != rule(first, b, prev, cfg.m):
                return False
            prev = last
        return True

    assert rule_holds(documented_last_plane, starts)
    # the same rule with F_k, the edge its first beat actually went
    assert rule_holds(documented_last_plane, [first for first, _ in spans])
    # the first beat goes on E_k unless it is also the last plane (then it waits for the drain)
    assert [first for first, _ in spans] == [e if b > 1 else last for e, b, (_, last)
                                              in zip(starts, beats, spans)]
    # the rule is sharp: dropping the drain term, or shifting it by one, is wrong here
    if cfg.m > 1:
        assert not rule_holds(lambda e, b, p, m: e + b - 1, starts)
        assert not rule_holds(lambda e, b, p, m: documented_last_plane(e, b, p, m - 1), starts)
    assert not rule_holds(lambda e, b, p, m: documented_last_plane(e, b, p, m + 1), starts)
    # the rest of the documented back-to-back schedule
    assert edges["cmd"][0] == 0 and edges["table"][0] == 0
    assert edges["cmd"][1:] == [last for _, last in spans[:-1]]   # on the last plane's edge
    for k, (_, last) in enumerate(spans):
        assert edges["result"][k * cfg.m:(k + 1) * cfg.m] == list(range(last + 1,
                                                                      last + 1 + cfg.m))


# -- valid gaps, withdrawn beats, garbage payloads, back-pressure ------------------------------

@pytest.mark.parametrize("cfg, gap, stall", [
    (LutConfig(w_bits=4, a_bits=8, g=4, m=2, n=3, k_max=24), 0.4, 0.3),
    (LutConfig(w_bits=2, a_bits=5, g=5, m=3, n=2, k_max=30, symmetric=False), 0.6, 0.0),
    (LutConfig(w_bits=2, a_bits=8, g=3, m=1, n=2, k_max=12), 0.3, 0.6),
], ids=["m2", "m3_full", "m1"])
def test_handshake_equations_and_valid_gaps(cfg, gap, stall):
    """Every ready / o_result__valid / o_busy of the array equals the documented equations,
    while sources drop valid at random (also without a transfer) and drive garbage payloads."""
    rng = np.random.default_rng(cfg.g)
    spec = [(f.label, w, k) for f, w in cfg.ops() for k in (1, cfg.g + 1, cfg.k_max)]
    ops = make_ops(cfg, spec, rng)
    edges, results = simulate(cfg, ops, seed=cfg.n, gap=gap, stall=stall, check_model=True)
    assert_exact(results, ops)
    assert len(edges["weight"]) == sum(op["groups"] * op["w"] for op in ops)


def test_handshake_model_catches_a_wrong_equation():
    """The model check is not vacuous: a model that forgets the drain condition fails."""
    class NoDrainWait(DocumentedHandshake):
        def outputs(self, cmd_valid, table_valid, weight_valid, result_ready):
            saved, self.rows_left = self.rows_left, 0
            out = super().outputs(cmd_valid, table_valid, weight_valid, result_ready)
            self.rows_left = saved
            return out[:3] + (self.rows_left > 0, self.active or self.rows_left > 0)

    cfg = LutConfig(w_bits=1, a_bits=4, g=2, m=3, n=1, k_max=4)
    ops = make_ops(cfg, [("int", 1, 2)] * 3, np.random.default_rng(0))
    simulate(cfg, ops, check_model=True)
    with pytest.raises(AssertionError, match="documented handshake differs"):
        simulate(cfg, ops, check_model=True, model_cls=NoDrainWait)


# -- padding of K ----------------------------------------------------------------------------------

def test_golden_packing_sends_code_zero_in_padded_positions():
    cfg = LutConfig(w_bits=3, a_bits=8, g=4, m=1, n=3, k_max=16)
    rng = np.random.default_rng(3)
    for fmt, w in cfg.ops():
        wt = random_weights(rng, (5, cfg.n), fmt, w)          # K = 5: 3 padded positions
        last_group = pack_weight_planes(cfg, wt, fmt, w)[-w:]
        for plane in last_group:
            for c in range(cfg.n):
                assert (plane >> (c * cfg.g + 1)) & 0b111 == 0


@pytest.mark.parametrize("cfg", [
    LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=3, k_max=16),
    LutConfig(w_bits=3, a_bits=6, g=5, m=1, n=2, k_max=16, symmetric=False),
], ids=lambda c: c.name)
def test_padded_weight_codes_do_not_matter(cfg):
    """Random codes in the padded K positions give the exact results; nonzero padded
    activations (tables built from them) do not -- the padding contract is on the tables."""
    spec = [(f.label, w, k) for f, w in cfg.ops() for k in (1, cfg.g + 2)]
    ops = make_ops(cfg, spec, np.random.default_rng(5), pad_codes=True)
    _, results = simulate(cfg, ops, seed=1, gap=0.2, stall=0.2)
    assert_exact(results, ops)
    ops = make_ops(cfg, spec, np.random.default_rng(5), pad_codes=True, pad_acts=True)
    _, results = simulate(cfg, ops)
    assert any((r != op["expected"]).any() for r, op in zip(results, ops))


def test_groups_up_to_groups_max_is_exact():
    """k_max = 15, g = 4: the command takes groups up to 4 (K = k_pad = 16), and the widths hold
    K = 16 at the extremes, which needs one result bit more than K = 15 would."""
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2, k_max=15, weight_formats=("int",))
    assert (cfg.groups_max, cfg.k_pad) == (4, 16)
    # every width depends on k_max only through groups_max: the build is a k_pad build
    assert cfg.derived() == cfg.replace(k_max=cfg.k_pad).derived()
    lo = -(1 << (cfg.a_bits - 1))
    spec = []
    for fmt, w in cfg.ops():
        wlo, whi = WeightFormat.parse(fmt).value_range(w)
        spec.append((fmt, w, wlo, whi))
    rng = np.random.default_rng(0)
    ops = []
    for fmt, w, wlo, whi in spec:
        for wv in (wlo, whi):
            a = np.full((cfg.m, cfg.k_pad), lo, dtype=np.int64)
            wt = np.full((cfg.k_pad, cfg.n), wv, dtype=np.int64)
            wt[:, 1] = random_weights(rng, (cfg.k_pad,), fmt, w)
            ops.append({"cmd": pack_cmd(cfg, fmt, w, cfg.groups_max), "w": w,
                        "groups": cfg.groups_max, "tables": pack_tables(cfg, a),
                        "planes": pack_weight_planes(cfg, wt, fmt, w),
                        "expected": reference_mpgemm(a, wt)})
    _, results = simulate(cfg, ops)
    assert_exact(results, ops)
    extremes = [int(v) for op in ops for v in op["expected"].ravel()]
    k_max_products = [cfg.k_max * lo * v for _, _, wlo, whi in spec for v in (wlo, whi)]
    assert signed_width(min(extremes), max(extremes)) == cfg.result_width
    assert signed_width(min(k_max_products), max(k_max_products)) < cfg.result_width
    with pytest.raises(ValueError, match="groups must be in 1..4"):
        pack_cmd(cfg, "int", 2, cfg.groups_max + 1)


def test_groups_zero_never_ends():
    """Documented: groups = 0 is not an operation; the array takes weight beats and never
    gives a result (until rst)."""
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2, k_max=12)
    dut = LutArray(cfg)
    seen = {"weights": 0, "results": 0}

    async def testbench(ctx):
        ctx.set(dut.i_cmd.payload, pack_cmd(cfg, "int", 2, 1) & ~(((1 << cfg.groups_width) - 1)
                                                                  << (2 + cfg.plane_width)))
        for port in (dut.i_cmd, dut.i_table, dut.i_weight):
            ctx.set(port.valid, 1)
        ctx.set(dut.o_result.ready, 1)
        for edge in range(40):
            seen["weights"] += edge > 0 and ctx.get(dut.i_weight.ready)
            seen["results"] += ctx.get(dut.o_result.valid)
            await ctx.tick()
            ctx.set(dut.i_cmd.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {"weights": 39, "results": 0}


# -- the widths table ------------------------------------------------------------------------------

def sbits(lo, hi):
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return bits


def doc_width_formulas():
    text = DOC.read_text()
    body = re.search(r"<!-- widths -->(.*?)<!-- /widths -->", text, re.DOTALL)
    assert body, "docs/interface.md lost its widths table"
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in body.group(1).splitlines() if line.strip().startswith("|")]
    return [(name.strip("`"), formula.strip("`")) for name, formula, _ in rows[2:]]


WIDTH_CONFIGS = [LutConfig(), LutConfig(k_max=15, weight_formats=("int",)),
                 LutConfig(w_bits=4, a_bits=16, g=6, m=3, n=5, k_max=1000, symmetric=False),
                 LutConfig(w_bits=1, a_bits=2, g=2, m=1, n=1, k_max=1),
                 LutConfig(w_bits=3, a_bits=5, g=5, k_max=77, weight_formats=("uint",)),
                 LutConfig(w_bits=2, a_bits=8, g=3, k_max=1 << 20,
                           weight_formats=("binary", "ternary"))]


@pytest.mark.parametrize("cfg", WIDTH_CONFIGS, ids=lambda c: f"{c.name}_k{c.k_max}")
def test_documented_width_formulas(cfg):
    """Every formula of the widths table, evaluated as written, equals the config's width."""
    from math import ceil, floor, log2
    env = dict(cfg.params(), ceil=ceil, floor=floor, log2=log2, sbits=sbits,
               ubits=lambda x: max(1, int(x).bit_length()),
               value_ranges=[f.value_range(w) for f, w in cfg.ops()])
    checked = []
    for name, formula in doc_width_formulas():
        env[name] = eval(formula, env)
        if hasattr(cfg, name):
            assert env[name] == getattr(cfg, name), (name, formula)
            checked.append(name)
    assert set(cfg.derived()) - set(checked) <= {"index_width", "select_width", "dequant_width",
                                                 "direct_width"}


def test_engine_manifest_widths(tmp_path):
    """derived.cmd_width is the array's command, derived.engine_cmd_width and ports give the
    engine's i_cmd__payload."""
    import json

    from gen.emit import emit
    cfg = LutConfig(w_bits=2, a_bits=4, g=2, m=1, n=1, k_max=1024)
    manifest = json.loads(Path(emit(cfg, tmp_path, top="engine")["manifest"]).read_text())
    ports = {p["name"]: p["width"] for p in manifest["ports"]}
    derived = manifest["derived"]
    assert derived["cmd_width"] == 2 + 2 + 10 < ports["i_cmd__payload"]
    assert ports["i_cmd__payload"] == derived["engine_cmd_width"] == derived["cmd_width"] + 32
    assert ports["i_table__payload"] == derived["table_width"]
    assert ports["o_result__payload"] == derived["result_row_width"]


def test_documented_default_widths():
    """The default build's widths quoted under the table are LutConfig()'s."""
    text = " ".join(DOC.read_text().split())
    quoted = re.search(r"Default build \(`([^`]*)`\): (.*?)\.", text)
    assert quoted, "docs/interface.md lost the default build's widths"
    params = dict(kv.strip().split("=") for kv in quoted.group(1).split(","))
    assert {k: int(v) for k, v in params.items()} == {k: LutConfig().params()[k] for k in params}
    pairs = re.findall(r"`(\w+)` (\d+)", quoted.group(2))
    assert len(pairs) >= 8
    assert {name: int(v) for name, v in pairs} == {name: getattr(LutConfig(), name)
                                                   for name, _ in pairs}
