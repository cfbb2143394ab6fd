"""Fast GEMM runner: whole GEMMs through the emitted engine in a compiled Verilator harness.

Python packs every stream of every GEMM in bulk (NumPy, the bit layouts of docs/interface.md;
``tests/test_fast_runner.py`` checks them against ``gen.golden.gemm_streams``), writes one job
file, runs the harness binary (``tb/fast/harness.py``) once for the whole batch, reads the
result beats back and checks them bit-exactly, together with the engine's ``o_cycles`` against
the span the harness saw. One build serves any number of batches.

    runner = FastEngine(LutConfig(w_bits=4, k_max=1536), "build/fast")
    out = runner.run([GemmJob(a, w, "int", 4)])          # out[0].result == a @ w, checked
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen.config import LutConfig, WeightFormat
from gen.golden import (bit_planes, build_tables, ideal_cycles, lut_mpgemm, pack_engine_cmd,
                        pad_k, reference_mpgemm, stored_tables, weight_codes)
from gen.tools import tool_env

from .harness import generate, streams, words

__all__ = ["GemmJob", "GemmResult", "FastEngine", "pack_fields", "unpack_fields",
           "engine_beats", "MismatchError", "check_result"]

MAGIC = 0x4C43464A
#: Verilator warnings the emitted Verilog raises (tb/runner.py explains each one)
WARNINGS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE")


class MismatchError(AssertionError):
    """The RTL result (or its cycle counter) differs from the golden model."""


def pack_fields(fields, width):
    """Beats of little-endian two's complement fields: ``(beats, fields)`` ints ->
    ``(beats, ceil(fields*width/32))`` uint32 words, LSB first (as ``gen.golden._pack_fields``)."""
    fields = np.asarray(fields, dtype=np.int64)
    beats, count = fields.shape
    vals = (fields & ((1 << width) - 1)).astype(np.uint64)
    bits = ((vals[:, :, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    bits = bits.reshape(beats, count * width)
    total = words(count * width) * 32
    bits = np.pad(bits, ((0, 0), (0, total - bits.shape[1])))
    return np.packbits(bits, axis=1, bitorder="little").view("<u4").reshape(beats, -1)


def unpack_fields(beats, count, width, signed=True):
    """Inverse of :func:`pack_fields`: ``(beats, words)`` uint32 -> ``(beats, count)`` int64."""
    beats = np.ascontiguousarray(beats, dtype="<u4")
    bits = np.unpackbits(beats.view(np.uint8), axis=1, bitorder="little")[:, : count * width]
    vals = bits.reshape(len(beats), count, width).astype(np.int64) @ (1 << np.arange(width))
    if signed:
        vals = np.where(vals >> (width - 1), vals - (1 << width), vals)
    return vals


def engine_beats(cfg: LutConfig, a, w, fmt, w_bits):
    """Every beat of one engine GEMM, in stream order, packed to words:
    ``{"cmd": (1, words), "tables" or "acts": (m_tiles*groups, words), "weights": (n_tiles *
    groups * w_bits, words) for ONE row block (the engine re-reads it m_tiles times),
    "m_tiles", "n_tiles"}``. Same beats as ``gen.golden.gemm_streams`` (checked by the tests)."""
    fmt = cfg.check_op(fmt, w_bits)
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    rows, k = a.shape
    cols = w.shape[1]
    m_tiles, n_tiles = -(-rows // cfg.m), -(-cols // cfg.n)
    a = np.pad(a, ((0, m_tiles * cfg.m - rows), (0, 0)))
    w = np.pad(w, ((0, 0), (0, n_tiles * cfg.n - cols)), constant_values=fmt.value_range(w_bits)[0])
    a, codes = pad_k(a, weight_codes(w, fmt, w_bits), cfg.g)
    groups = a.shape[1] // cfg.g
    out = {"cmd": pack_fields([[pack_engine_cmd(cfg, fmt, w_bits, groups, m_tiles, n_tiles)]],
                              cfg.engine_cmd_width),
           "m_tiles": m_tiles, "n_tiles": n_tiles, "groups": groups}
    if cfg.precompute:
        acts = a.reshape(m_tiles, cfg.m, groups, cfg.g).transpose(0, 2, 1, 3)
        out["acts"] = pack_fields(acts.reshape(m_tiles * groups, -1), cfg.a_bits)
    else:
        stored = stored_tables(build_tables(a, cfg.g), cfg.symmetric)      # M' x G x E
        t = stored.reshape(m_tiles, cfg.m, groups, -1).transpose(0, 2, 1, 3)
        out["tables"] = pack_fields(t.reshape(m_tiles * groups, -1), cfg.entry_width)
    planes = bit_planes(codes, w_bits)                                     # w x K' x N'
    idx = np.einsum("wjgn,g->wjn", planes.reshape(w_bits, groups, cfg.g, -1), 1 << np.arange(cfg.g))
    idx = idx.reshape(w_bits, groups, n_tiles, cfg.n).transpose(2, 1, 0, 3)
    out["weights"] = pack_fields(idx.reshape(-1, cfg.n), cfg.g)
    return out


def check_result(cfg, job, r, span):
    """Raise :class:`MismatchError` unless ``r`` equals the golden model and its ``o_cycles``
    equals the ``span`` the testbench saw."""
    if job.golden == "lut":
        want = lut_mpgemm(job.a, job.w, WeightFormat.parse(job.fmt), job.w_bits, cfg)
    else:
        want = reference_mpgemm(job.a, job.w)
    if r.result.shape != want.shape or not np.array_equal(r.result, want):
        bad = int((r.result != want).sum()) if r.result.shape == want.shape else "all"
        raise MismatchError(f"{job.name or 'GEMM'} {job.a.shape}x{job.w.shape} "
                            f"{job.fmt}{job.w_bits}: RTL differs from the golden model "
                            f"in {bad} results")
    if r.cycles != span:
        raise MismatchError(f"{job.name}: o_cycles {r.cycles}, the harness saw {span} edges")


@dataclass
class GemmJob:
    """``A (M x K) @ W (K x N)``: ``a`` signed ``a_bits`` integers, ``w`` weight values of
    ``fmt`` at ``w_bits``. ``golden``: ``"lut"`` checks against ``gen.golden.lut_mpgemm`` (the
    hardware's algorithm step by step, with every width checked), ``"reference"`` against
    ``gen.golden.reference_mpgemm`` (plain int64 ``A @ W``, which the tests prove equal to it;
    much faster for model-sized GEMMs)."""
    a: np.ndarray
    w: np.ndarray
    fmt: str = "int"
    w_bits: int = 2
    name: str = ""
    golden: str = "lut"


@dataclass
class GemmResult:
    name: str
    result: np.ndarray          # M x N, checked
    cycles: int                 # the engine's o_cycles (equal to the harness' span, checked)
    ideal: int
    sim_cycles: int             # cycles the harness simulated for this job (incl. gaps)

    @property
    def utilization(self):
        return self.ideal / self.cycles


class FastEngine:
    """One emitted engine, compiled once with its generated harness."""

    #: Verilator warnings waived for this top (a subclass may add its own)
    warnings = WARNINGS

    def __init__(self, cfg: LutConfig, workdir, top="engine", opt="-O2"):
        from gen.emit import emit
        self.cfg = cfg
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        res = emit(cfg, self.workdir / "rtl", top=top)
        self.name = res["name"]
        self.manifest = json.loads(Path(res["manifest"]).read_text())
        self.inputs, self.output, self.scalars = streams(self.manifest)
        self.verilog = Path(res["verilog"])
        self.binary = self.workdir / "obj" / "harness"
        self.build_s = self._build(opt)
        self.last_sim_s = 0.0
        #: CPU seconds (user + system) of the harness processes: the last call, all calls
        self.last_cpu_s = 0.0
        self.cpu_s = 0.0

    def _build(self, opt):
        import fcntl
        # several processes (pytest-xdist workers, gen.model --jobs) may share a build directory
        with open(self.workdir / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._build_locked(opt)

    def _build_locked(self, opt):
        src = generate(self.manifest)
        cpp = self.workdir / "harness.cpp"
        stamp = hashlib.sha256((src + self.verilog.read_text() + opt).encode()).hexdigest()
        stamp_file = self.workdir / "obj" / "stamp"
        if self.binary.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
            return 0.0
        cpp.write_text(src)
        cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
               "--x-initial", "fast", "--noassert", *self.warnings, "--top-module", self.name,
               "--prefix", "Vtop", "-Mdir", str(self.workdir / "obj"), "-o", "harness",
               "-CFLAGS", opt, "-MAKEFLAGS", f"OPT_FAST={opt} OPT_SLOW=-O0",
               str(self.verilog), str(cpp)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=tool_env(), capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"verilator build failed ({proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        stamp_file.write_text(stamp)
        return time.perf_counter() - t0

    def _harness(self, argv):
        """Run the harness; its CPU time (a figure that does not depend on how many other jobs
        share the machine, unlike cycles per wall second) goes to ``last_cpu_s``."""
        def cpu():
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime
        c0 = cpu()
        proc = subprocess.run(argv, capture_output=True, text=True)
        self.last_cpu_s = cpu() - c0
        self.cpu_s += self.last_cpu_s
        return proc

    # -- job files ---------------------------------------------------------------------------

    def job_beats(self, job):
        """One job's streams: ``{"streams": {port: (beats as words, repeat)}, "want": result
        beats, "ideal": cycles, ...}`` (the extra keys are for :meth:`decode`). A subclass
        for another top (``tb.fast.fp_engine``) overrides this, :meth:`decode` and :meth:`check`."""
        b = engine_beats(self.cfg, job.a, job.w, job.fmt, job.w_bits)
        b["streams"] = {"i_cmd": (b["cmd"], 1), "i_table": (b.get("tables"), 1),
                        "i_act": (b.get("acts"), 1), "i_weight": (b["weights"], b["m_tiles"])}
        b["want"] = b["m_tiles"] * b["n_tiles"] * self.cfg.m
        b["ideal"] = ideal_cycles(self.cfg, job.a.shape[0], job.w.shape[1], job.a.shape[1],
                                  job.w_bits)
        return b

    def decode(self, job, beats, rows):
        """The ``M x N`` result of a job from its result beats (``(want, words)`` uint32)."""
        cfg = self.cfg
        res = unpack_fields(rows, cfg.n, cfg.result_width)
        res = res.reshape(beats["m_tiles"], beats["n_tiles"], cfg.m, cfg.n)
        res = res.transpose(0, 2, 1, 3).reshape(beats["m_tiles"] * cfg.m, -1)
        return res[: job.a.shape[0], : job.w.shape[1]]

    def _job_words(self, beats, pause_in, pause_out, seed):
        head = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, int(pause_in * 65536),
                int(pause_out * 65536)]
        # a generous time-out: pauses stretch a GEMM by about 1 / (1 - p) per stream
        limit = (4 * beats["ideal"] + 10_000) / (1 - max(pause_in, pause_out)) ** 2
        parts = [np.array(head + [min(int(limit), 0xFFFFFFFF), beats["want"]], dtype="<u4")]
        per_stream = beats["streams"]
        for name, width in self.inputs:
            if name not in per_stream or per_stream[name][0] is None:
                raise ValueError(f"no beats for input stream {name}")
            data, rep = per_stream[name]
            if data.shape[1] != words(width):
                raise ValueError(f"{name}: beats of {data.shape[1]} words, "
                                 f"port needs {words(width)}")
            parts += [np.array([len(data), rep], dtype="<u4"), data.astype("<u4").ravel()]
        return parts

    def run(self, jobs, pause_in=0.0, pause_out=0.0, seed=1, check=True):
        """Run ``jobs`` (GemmJob) in one harness call; return GemmResults, every one checked
        against the golden model when ``check`` (a mismatch raises :class:`MismatchError`).
        ``pause_in``/``pause_out``: probability of a pause on each input stream / of ``ready``
        low on the output, per cycle."""
        for name, p in (("pause_in", pause_in), ("pause_out", pause_out)):
            if not 0 <= p < 1:
                raise ValueError(f"{name} must be in [0, 1), not {p}")
        parts = [np.array([MAGIC, len(jobs)], dtype="<u4")]
        metas = []
        for i, job in enumerate(jobs):
            beats = self.job_beats(job)
            parts += self._job_words(beats, pause_in, pause_out, seed + i)
            metas.append(beats)
        # one file pair per process: several runs may share one build at once
        jfile = self.workdir / f"jobs.{os.getpid()}.bin"
        rfile = self.workdir / f"results.{os.getpid()}.bin"
        np.concatenate(parts).tofile(jfile)
        try:
            proc = self._harness([str(self.binary), str(jfile), str(rfile)])
            if proc.returncode:
                raise RuntimeError(f"harness failed ({proc.returncode}): {proc.stderr.strip()}")
            self.last_sim_s = float(proc.stdout.split()[1])
            raw = np.fromfile(rfile, dtype="<u4")
        finally:        # the files are per process: a long model run would leave one per worker
            jfile.unlink(missing_ok=True)
            rfile.unlink(missing_ok=True)
        if raw[0] != MAGIC or raw[1] != len(jobs):
            raise RuntimeError("harness wrote a bad result file")
        pos, out = 2, []
        ww = words(self.output[1])
        scalar_names = [n for n, _ in self.scalars]
        for job, beats in zip(jobs, metas):
            span, sim_cycles = int(raw[pos]), int(raw[pos + 1])
            fields = raw[pos + 2: pos + 2 + len(scalar_names)]
            scal = dict(zip(scalar_names, (int(x) for x in fields)))
            pos += 2 + len(scalar_names)
            nres = beats["want"]
            res = self.decode(job, beats, raw[pos: pos + nres * ww].reshape(nres, ww))
            pos += nres * ww
            r = GemmResult(job.name, res, scal.get("o_cycles", span), beats["ideal"], sim_cycles)
            if check:
                self.check(job, r, span)
            out.append(r)
        return out

    def check(self, job, r, span):
        check_result(self.cfg, job, r, span)

    def raw_speed(self, job, cycles):
        """The speed ceiling: cycles per second of the same model with every input valid every
        cycle (random payloads, the job's command), output ready, no IO and no checks."""
        parts = [np.array([MAGIC, 1], dtype="<u4")] + self._job_words(self.job_beats(job), 0, 0, 1)
        jfile = self.workdir / f"raw.{os.getpid()}.bin"
        np.concatenate(parts).tofile(jfile)
        try:
            proc = self._harness([str(self.binary), "raw", str(cycles), str(jfile)])
        finally:
            jfile.unlink(missing_ok=True)
        if proc.returncode:
            raise RuntimeError(f"harness failed ({proc.returncode}): {proc.stderr.strip()}")
        n, s = proc.stdout.split()
        return int(n) / float(s)
