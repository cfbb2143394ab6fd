"""Accuracy and cycle figures of a quantized encoder run, as JSON, markdown and a plot."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gen.tools import atomic_write

from .encoder import SHORT, linear_names

__all__ = ["compare", "scheme_record", "write_report"]


def _nearest(emb):
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def compare(ref, emb):
    """Cosine of each sentence embedding with the float one, and nearest-neighbour agreement
    (the most similar other sentence of the set is the same as with the float model)."""
    cos = np.sum(ref * emb, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(emb, axis=1))
    nn_ref, nn = _nearest(ref), _nearest(emb)
    return {"cosine": cos.tolist(), "mean_cosine": float(cos.mean()),
            "min_cosine": float(cos.min()), "nn_agree": int((nn_ref == nn).sum()),
            "nn_total": len(cos), "nearest": nn.tolist()}


def scheme_record(backend, float_backend, layers, tokens, rtl):
    """Per-layer error, cycles and utilization of one scheme's backend."""
    per_layer, cycles, ideal = [], 0, 0
    for key in linear_names(layers):
        st = backend.stats[key]
        ref = float_backend.outputs[key]
        err = float(np.linalg.norm(backend.outputs[key] - ref) / np.linalg.norm(ref))
        rec = {"layer": key[0], "linear": SHORT[key[1]], "shape": st["shape"],
               "gemms": st["gemms"], "error": err, "local_error": backend.local_error[key]}
        if st["cycles"] is not None:
            rec.update(cycles=st["cycles"], ideal=st["ideal"],
                       utilization=st["ideal"] / st["cycles"])
            cycles += st["cycles"]
            ideal += st["ideal"]
        per_layer.append(rec)
    out = {"per_layer": per_layer}
    if rtl is not None:
        total = sum(tokens)
        out.update(cycles=cycles, ideal=ideal, utilization=ideal / cycles if cycles else None,
                   cycles_per_token=cycles / total,
                   cycles_per_sentence=[cycles * t / total for t in tokens],
                   sim_cycles=rtl.sim_cycles, sim_s=rtl.sim_s, rtl_wall_s=rtl.wall_s,
                   cycles_per_s=rtl.sim_cycles / rtl.wall_s if rtl.wall_s else None)
        cpu = getattr(rtl.engine, "cpu_s", 0.0)       # the harness processes' CPU seconds
        out.update(harness_cpu_s=cpu, cycles_per_cpu_s=rtl.sim_cycles / cpu if cpu else None)
    return out


def _plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, s in report["schemes"].items():
        err = [r["error"] for r in s["per_layer"]]
        loc = [r["local_error"] for r in s["per_layer"]]
        line, = ax.semilogy(err, marker="o", ms=3, label=f"{name}: output vs float model")
        ax.semilogy(loc, ls="--", color=line.get_color(), lw=1,
                    label=f"{name}: this layer alone (same input)")
    first = next(iter(report["schemes"].values()))
    labels = [f"{r['layer']}.{r['linear']}" for r in first["per_layer"]]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("relative error (Frobenius)")
    act = report["design"].get("act_format", "int8").upper()
    ax.set_title(f"all-MiniLM-L6-v2 linear layers, {act} activations, {report['design']['name']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(r):
    d = r["design"]
    lines = ["# all-MiniLM-L6-v2 through the LUT engine RTL", "",
             f"Engine `{d['name']}` (m={d['m']}, n={d['n']}, g={d['g']}, k_max={d['k_max']}, "
             f"w_bits={d['w_bits']}"
             + (f", {d['act_format']}, q tables t={d['table_bits']}, b={d['scale_block']}"
                if "act_format" in d else "")
             + f"); {r['sentences']} sentences, {sum(r['tokens'])} tokens "
             f"(at most {max(r['tokens'])} per sentence), {r['layers']} encoder layer(s), "
             f"activations {r['activations']}. "
             + ("Every GEMM ran on the RTL (Verilator, tb/fast) and was checked bit-exactly "
                "against the golden model." if r["rtl"] else
                "GEMMs on the golden model only (no RTL)."), "",
             "| weights | mean cosine vs float | min cosine | nearest neighbour = float's | "
             "engine cycles | cycles / sentence (mean) | utilization | RTL wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for _name, s in r["schemes"].items():
        c = s["compare"]
        cyc = (f"{s['cycles']:,} | {np.mean(s['cycles_per_sentence']):,.0f} | "
               f"{100 * s['utilization']:.2f} % | {s['rtl_wall_s']:.0f}"
               if s.get("cycles") else "- | - | - | -")
        lines.append(f"| {s['label']} | {c['mean_cosine']:.4f} | {c['min_cosine']:.4f} | "
                     f"{c['nn_agree']}/{c['nn_total']} | {cyc} |")
    cpu = [f"{n} {s['harness_cpu_s']:.0f} s ({s['cycles_per_cpu_s']:,.0f} cycles per CPU second)"
           for n, s in r["schemes"].items() if s.get("cycles_per_cpu_s")]
    if cpu:
        lines += ["", "CPU time of the Verilator harness processes (independent of how many "
                  "other jobs share the machine, unlike the wall time): " + "; ".join(cpu) + "."]
    lines += ["", "Cycles are the engine's own `o_cycles` (command to last result), summed over "
              "the GEMMs; all sentences' tokens are stacked into one GEMM per layer, so a "
              "sentence's cycles are the total times its share of the tokens. Utilization = "
              "ideal / measured, ideal = M*N*K*w / (m*n*g).", "",
              "Per layer (error = relative Frobenius error of the layer's output against the "
              "float model's; alone = against the float layer on the same input):", ""]
    names = list(r["schemes"])
    lines.append("| layer | shape MxKxN | " + " | ".join(
        f"{n} error (alone) | {n} cycles (util.)" for n in names) + " |")
    lines.append("|---|---|" + "---|---|" * len(names))
    first = r["schemes"][names[0]]["per_layer"]
    for i, rec in enumerate(first):
        cells = []
        for n in names:
            p = r["schemes"][n]["per_layer"][i]
            cyc = f"{p['cycles']:,} ({100 * p['utilization']:.1f} %)" if "cycles" in p else "-"
            cells.append(f"{p['error']:.4f} ({p['local_error']:.4f}) | {cyc}")
        shape = "x".join(str(v) for v in rec["shape"])
        lines.append(f"| {rec['layer']}.{rec['linear']} | {shape} | " + " | ".join(cells) + " |")
    lines += ["", "![per-layer error](per_layer_error.png)", "",
              f"Wall time of the whole run: {r['wall_s']:.0f} s.", ""]
    return "\n".join(lines)


def write_report(report, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _plot(report, out / "per_layer_error.png")
    atomic_write(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write(out / "report.md", _markdown(report))
    return out / "report.md"
