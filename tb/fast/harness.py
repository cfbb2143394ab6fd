"""Generate a Verilator C++ harness for an emitted top from its manifest's port list.

The harness knows nothing about GEMMs: it drives every *input stream* of the top (ports
``<s>__payload/__valid/__ready`` with ``<s>__payload`` an input, in manifest order) from beats
read from a job file, collects every beat of the one *output stream* (``<s>__payload`` an
output), and at the end of each job records every other output (``o_cycles``, ``o_busy`` ...).
Names and widths come from the manifest; nothing about the design is written here by hand.

Job file (little-endian ``uint32`` words)::

    magic 0x4c43464a ('LCFJ'), job count
    per job: seed_lo, seed_hi, pause_in (per 65536), pause_out (per 65536), max_cycles,
             results expected,
             per input stream: beat count, repeat count, then beats * words of the beats
             (a beat of ``width`` bits is ``ceil(width / 32)`` words, LSB first)

The stream is its beats sent ``repeat`` times over (the engine re-reads a row block's weight
planes for every row block, so the driver stores them once). Result file::

    magic, job count; per job: harness edges from the first stream's (the command's) first
    transfer to the last result
    (inclusive), simulated cycles of the job, each scalar output (one word each, <= 32 bits),
    then the result beats.

A source raises ``valid`` when it has a beat and its pause draw says go, keeps ``valid`` and the
payload until the transfer (stream rules, docs/interface.md); the sink drops ``ready`` with
probability ``pause_out``. Draws come from a SplitMix64 generator seeded per job, so a run with
pauses is repeatable. ``raw N`` mode is the speed ceiling: every input valid every cycle with
payloads from a pool of random beats (the first job's first beat on the first stream, which
keeps the command valid), the output always ready, no files, no checks.
"""
from __future__ import annotations

__all__ = ["cxx_name", "streams", "generate", "words"]


def cxx_name(port):
    """Verilator's C++ member name: each ``__`` becomes ``___05F`` (``i_cmd___05Fpayload``)."""
    return port.replace("__", "___05F")


def words(width):
    return -(-width // 32)


def streams(manifest):
    """``(inputs, output, scalars)`` of a manifest: input streams as (name, width) in port order,
    the output stream (name, width), and the other outputs (name, width)."""
    ports = {p["name"]: p for p in manifest["ports"]}
    inputs, outputs = [], []
    for p in manifest["ports"]:
        if p["name"].endswith("__payload"):
            s = p["name"][: -len("__payload")]
            for ctl in ("valid", "ready"):
                if f"{s}__{ctl}" not in ports:
                    raise ValueError(f"stream {s} has no {s}__{ctl} port")
            (inputs if p["direction"] == "input" else outputs).append((s, p["width"]))
    if len(outputs) != 1:
        raise ValueError(f"the harness drives designs with one output stream, not {outputs}")
    stream_ports = {f"{s}__{x}" for s, _ in inputs + outputs for x in ("payload", "valid", "ready")}
    scalars = [(p["name"], p["width"]) for p in manifest["ports"]
               if p["direction"] == "output" and p["name"] not in stream_ports]
    for name, width in scalars:
        if width > 32:
            raise ValueError(f"scalar output {name} is {width} bits; the harness records <= 32")
    return inputs, outputs[0], scalars


def _set_payload(port, width, src):
    """C++ statements copying ``words`` at ``src`` into the payload port."""
    m = f"top->{cxx_name(port)}"
    if width <= 32:
        return f"{m} = {src}[0];"
    if width <= 64:
        return f"{m} = (uint64_t){src}[0] | ((uint64_t){src}[1] << 32);"
    return f"for (int i = 0; i < {words(width)}; ++i) {m}[i] = {src}[i];"


def _get_payload(port, width, dst):
    m = f"top->{cxx_name(port)}"
    if width <= 32:
        return f"{dst}[0] = (uint32_t){m};"
    if width <= 64:
        return f"{dst}[0] = (uint32_t){m}; {dst}[1] = (uint32_t)((uint64_t){m} >> 32);"
    return f"for (int i = 0; i < {words(width)}; ++i) {dst}[i] = {m}[i];"


def generate(manifest):
    """The harness source (C++17) for the manifest's top (class ``Vtop``)."""
    inputs, (out, out_w), scalars = streams(manifest)
    n_in = len(inputs)
    c = cxx_name
    src_decl = "\n".join(
        f"    {{\"{s}\", {words(w)}, {{}}, 0, 0, 0, false}},  // {w} bits" for s, w in inputs)
    drive = []
    sample = []
    raw_drive = []
    for i, (s, w) in enumerate(inputs):
        drive.append(f"""        {{ Src &q = src[{i}];
          if (!q.valid && q.left() && !(pin && draw(rng) < pin)) {{
            q.valid = true; {_set_payload(s + '__payload', w, 'q.beat()')} }}
          top->{c(s + '__valid')} = q.valid; }}""")
        sample.append(f"        fire[{i}] = src[{i}].valid && top->{c(s + '__ready')};")
        raw_drive.append(
            f"        {{ const uint32_t *b = {'src[0].data.data()' if i == 0 else f'pool[{i}].data() + (cyc % 1024) * {words(w)}'};"
            f" {_set_payload(s + '__payload', w, 'b')} top->{c(s + '__valid')} = 1; }}")
    pools = "\n".join(
        f"    pool[{i}].resize(1024 * {words(w)}); for (auto &x : pool[{i}]) x = (uint32_t)splitmix(seed);"
        for i, (_, w) in enumerate(inputs))
    scal_write = "\n".join(f"        put(out, (uint32_t)top->{c(n)});" for n, _ in scalars)
    scal_names = ", ".join(n for n, _ in scalars)
    return f"""// Generated by tb/fast/harness.py from the manifest of {manifest['name']}: do not edit.
// Scalar outputs recorded per job: {scal_names or 'none'}.
#include "Vtop.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static uint64_t splitmix(uint64_t &s) {{
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}}
static inline uint32_t draw(uint64_t &s) {{ return (uint32_t)(splitmix(s) >> 48); }}

struct Src {{
    const char *name; int words; std::vector<uint32_t> data;
    uint64_t beats, repeat, sent; bool valid;
    uint64_t total() const {{ return beats * repeat; }}
    bool left() const {{ return sent < total(); }}
    const uint32_t *beat() const {{ return data.data() + (sent % beats) * words; }}
}};

static uint32_t get(FILE *f) {{
    uint32_t v;
    if (fread(&v, 4, 1, f) != 1) {{ fprintf(stderr, "harness: job file ends early\\n"); exit(3); }}
    return v;
}}
static void put(FILE *f, uint32_t v) {{ fwrite(&v, 4, 1, f); }}

int main(int argc, char **argv) {{
    if (argc != 3 && !(argc == 4 && std::string(argv[1]) == "raw")) {{
        fprintf(stderr, "usage: %s JOBS RESULTS | raw CYCLES JOBS\\n", argv[0]); return 2; }}
    const bool raw = argc == 4;
    FILE *in = fopen(raw ? argv[3] : argv[1], "rb");
    if (!in) {{ perror("harness: jobs"); return 2; }}
    FILE *out = raw ? nullptr : fopen(argv[2], "wb");
    if (!raw && !out) {{ perror("harness: results"); return 2; }}
    if (get(in) != 0x4c43464aU) {{ fprintf(stderr, "harness: not a job file\\n"); return 2; }}
    const uint32_t jobs = get(in);
    const int out_words = {words(out_w)};
    Vtop *top = new Vtop;
    top->clk = 0; top->rst = 1;
    for (int i = 0; i < 4; ++i) {{ top->clk = !top->clk; top->eval(); }}
    top->rst = 0; top->clk = 0; top->eval();
    uint64_t cyc = 0;
    double sim_s = 0;
    if (out) {{ put(out, 0x4c43464aU); put(out, jobs); }}
    std::vector<uint32_t> res;
    for (uint32_t job = 0; job < (raw ? 1u : jobs); ++job) {{
        uint64_t rng = get(in); rng |= (uint64_t)get(in) << 32;
        const uint32_t pin = get(in), pout = get(in), max_cycles = get(in), want = get(in);
        Src src[{n_in}] = {{
{src_decl}
        }};
        for (auto &q : src) {{
            q.beats = get(in); q.repeat = get(in);
            q.data.resize(q.beats * q.words);
            if (q.beats && fread(q.data.data(), 4, q.data.size(), in) != q.data.size()) {{
                fprintf(stderr, "harness: job file ends early\\n"); return 3; }}
        }}
        if (raw) {{
            std::vector<uint32_t> pool[{n_in}];
            uint64_t seed = rng;
{pools}
            const uint64_t n = strtoull(argv[2], nullptr, 10);
            top->{c(out + '__ready')} = 1;
            auto t0 = std::chrono::steady_clock::now();
            for (; cyc < n; ++cyc) {{
{chr(10).join(raw_drive)}
                top->clk = 0; top->eval(); top->clk = 1; top->eval();
            }}
            sim_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            break;
        }}
        res.assign((size_t)want * out_words, 0);
        uint32_t got = 0;
        uint64_t start = cyc, first = 0, last = 0;
        bool started = false;
        auto t0 = std::chrono::steady_clock::now();
        while (got < want) {{
            if (cyc - start >= max_cycles) {{
                fprintf(stderr, "harness: job %u timed out after %u cycles with %u of %u results\\n",
                        job, max_cycles, got, want);
                return 4; }}
{chr(10).join(drive)}
            const bool ready = !(pout && draw(rng) < pout);
            top->{c(out + '__ready')} = ready;
            top->clk = 0; top->eval();
            bool fire[{n_in}];
{chr(10).join(sample)}
            const bool take = ready && top->{c(out + '__valid')};
            if (take) {{ uint32_t *d = res.data() + (size_t)got * out_words; {_get_payload(out + '__payload', out_w, 'd')} }}
            top->clk = 1; top->eval(); ++cyc;
            for (int i = 0; i < {n_in}; ++i)
                if (fire[i]) {{
                    if (i == 0 && !started) {{ started = true; first = cyc; }}
                    src[i].valid = false; ++src[i].sent; }}
            if (take) {{ ++got; last = cyc; }}
        }}
        sim_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (auto &q : src)
            if (q.left() || q.valid) {{
                fprintf(stderr, "harness: job %u ended with beats left on %s\\n", job, q.name);
                return 5; }}
        put(out, (uint32_t)(want ? last - first + 1 : 0)); put(out, (uint32_t)(cyc - start));
{scal_write}
        fwrite(res.data(), 4, res.size(), out);
    }}
    fprintf(stderr, "harness: %llu cycles in %.6f s\\n", (unsigned long long)cyc, sim_s);
    printf("%llu %.6f\\n", (unsigned long long)cyc, sim_s);
    if (out) fclose(out);
    fclose(in);
    top->final();
    delete top;
    return 0;
}}
"""
