"""The sweep's PNG plots (matplotlib, Agg): tile shape, group size, LUT/MAC ratio, table
storage, the area breakdown at the default point's tile, and the FP family."""
from __future__ import annotations

from .points import KINDS
from .report import _find, _one, fp_ratio_table, ratio_table

__all__ = ["plot_all"]

W_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:purple", 4: "tab:green"}
MAC_STYLE = {"mac_dequant": ("tab:red", "s"), "mac_direct": ("tab:gray", "^")}
A_STYLE = {8: "-", 16: "--"}


def _shape_order(rows):
    shapes = sorted({(r["m"], r["n"]) for r in rows}, key=lambda s: (s[0], -s[1]))
    return [f"{m}x{n}" for m, n in shapes]


def _save(fig, path, bottom):
    """Lay out ``fig`` above a footer band of height ``bottom``, write it as PNG, close it."""
    import matplotlib.pyplot as plt
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(rows, out, k_max):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    plt.rcParams.update({"axes.titlesize": 10})
    plain = FuncFormatter(lambda v, _: f"{v:g}")

    def plain_log(ax):
        """Log y axis with plain numbers (0.5, 1, 2) instead of 5x10^-1."""
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)

    written = []
    foot = (f"Yosys generic gates, GE = transistors/4, FF = 24 T/bit; k_max = {k_max}; "
            "whole array incl. control, table register, accumulators, output buffers")

    # -- tile shape -----------------------------------------------------------------------
    tile = [r for r in rows if "tile" in r["families"]]
    if tile:
        order = _shape_order(tile)
        x = {s: i for i, s in enumerate(order)}
        fig, axes = plt.subplots(1, 3, figsize=(17, 5))
        for kind in KINDS:
            for a in sorted({r["a_bits"] for r in tile}):
                ws = sorted({r["w_bits"] for r in tile if r["kind"] == kind})
                if kind != "lut":
                    ws = [w for w in ws if w == 2] or ws[:1]
                for w in ws:
                    if kind == "lut" and w == 3:
                        continue
                    pts = sorted(_find(tile, kind=kind, a_bits=a, w_bits=w),
                                 key=lambda r: x[r["shape"]])
                    if not pts:
                        continue
                    if kind == "lut":
                        color, marker, lab = W_COLORS[w], "o", f"LUT W{w}A{a}"
                    else:
                        color, marker = MAC_STYLE[kind]
                        lab = f"{kind.replace('_', ' ').upper().replace('MAC ', 'MAC-')} W{w}A{a}"
                    xs = [x[r["shape"]] for r in pts]
                    axes[0].plot(xs, [r["ge"] / 1000 for r in pts], A_STYLE.get(a, ":"),
                                 color=color, marker=marker, label=lab)
                    axes[1].plot(xs, [r["density_per_kge"] for r in pts], A_STYLE.get(a, ":"),
                                 color=color, marker=marker, label=lab)
                    if kind == "lut":
                        axes[2].plot(xs, [r["in_bits_per_cycle"] for r in pts],
                                     A_STYLE.get(a, ":"), color=color, marker=marker)
                    elif kind == "mac_dequant":
                        # both MAC kinds take the same operands: one line per a_bits
                        axes[2].plot(xs, [r["in_bits_per_cycle"] for r in pts],
                                     A_STYLE.get(a, ":"), color="black", marker="x",
                                     label=f"MAC (either kind) W{w}A{a}")
        for ax in axes:
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order)
            ax.set_xlabel("tile shape m x n (g = 4, equal m*n)")
            plain_log(ax)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("area (kGE)")
        axes[0].set_title("Array area vs tile shape")
        axes[1].set_ylabel("compute density (MACs/cycle per 1000 GE)")
        axes[1].set_title("Compute density vs tile shape")
        handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, handlelength=3.5,
                   bbox_to_anchor=(0.5, 0.035))
        axes[2].legend(fontsize=7, loc="upper center")
        axes[2].set_ylabel("operand input (bits per cycle, at full rate)")
        axes[2].set_title("Input bandwidth vs tile shape (analytic)\n"
                          "LUT: n*g weight bits + m tables every w cycles")
        fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
        written.append(_save(fig, out / "tile_shape.png", bottom=0.12))

    # -- group size -----------------------------------------------------------------------
    grp = [r for r in rows if "group" in r["families"]]
    if grp:
        a_list = sorted({r["a_bits"] for r in grp})
        fig, axes = plt.subplots(1, len(a_list), figsize=(6 * len(a_list), 5.6), squeeze=False)
        for ax, a in zip(axes[0], a_list):
            for w in sorted({r["w_bits"] for r in grp if r["kind"] == "lut"}):
                for sym, ls in ((True, "-"), (False, "--")):
                    pts = sorted(_find(grp, kind="lut", a_bits=a, w_bits=w, symmetric=sym),
                                 key=lambda r: r["g"])
                    if pts:
                        ax.plot([r["g"] for r in pts], [r["density_per_kge"] for r in pts], ls,
                                color=W_COLORS[w], marker="o",
                                label=f"LUT W{w} {'symmetric' if sym else 'full table'}")
            for kind in ("mac_dequant", "mac_direct"):
                pts = sorted(_find(grp, kind=kind, a_bits=a), key=lambda r: r["g"])
                if pts:
                    color, marker = MAC_STYLE[kind]
                    ax.plot([r["g"] for r in pts], [r["density_per_kge"] for r in pts], ":",
                            color=color, marker=marker,
                            label=f"{kind} W{pts[0]['w_bits']}")
            ns = sorted({(r["m"], r["n"]) for r in grp})
            ax.set_title(f"Compute density vs group size, A{a} "
                         f"(tile {', '.join(f'{m}x{n}' for m, n in ns)})")
            ax.set_xlabel("group size g (activations per table; the paper's K)")
            ax.set_ylabel("compute density (MACs/cycle per 1000 GE)")
            ax.set_xticks(sorted({r["g"] for r in grp}))
            plain_log(ax)
            ax.grid(True, which="both", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, handlelength=3.5,
                   bbox_to_anchor=(0.5, 0.035))
        fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
        written.append(_save(fig, out / "group_size.png", bottom=0.15))

    # -- LUT / MAC ratio vs w_bits --------------------------------------------------------
    rt = ratio_table(rows)
    if rt:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, which, title in ((axes[0], "ratio_same", "same tile"),
                                 (axes[1], "ratio_best", "each at its best m x n")):
            for mac in ("mac_dequant", "mac_direct"):
                for a in sorted({r["a_bits"] for r in rt}):
                    pts = sorted([r for r in rt if r["baseline"] == mac and r["a_bits"] == a
                                  and r[which] is not None], key=lambda r: r["w_bits"])
                    if not pts:
                        continue
                    color, marker = MAC_STYLE[mac]
                    ax.plot([r["w_bits"] for r in pts], [r[which] for r in pts],
                            A_STYLE.get(a, ":"), color=color, marker=marker,
                            label=f"LUT / {mac}, A{a}")
                    for r in pts:
                        dy = 4 if mac == "mac_dequant" else (-11 if a == 8 else 5)
                        ax.annotate(f"{r[which]:.2f}", (r["w_bits"], r[which]), fontsize=7,
                                    textcoords="offset points", xytext=(5, dy),
                                    color=color)
            ax.axhline(1.0, color="black", lw=0.8)
            plain_log(ax)
            shapes = sorted({r["same_shape"] for r in rt if r["same_shape"]})
            ax.set_title("LUT / MAC density ratio vs weight bits,\n"
                         + (f"{title} ({', '.join(shapes)}, g = 4)" if which == "ratio_same"
                            else f"{title} (equal-size tiles; MAC also with g = 8, 16)"),
                         fontsize=10)
            ax.set_xlabel("weight bits w_bits (LUT runs w bit-planes serially)")
            ax.set_xticks(sorted({r["w_bits"] for r in rt}))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, handlelength=3.5)
        axes[0].set_ylabel("density ratio LUT / MAC (MACs/cycle per GE; > 1: LUT denser)")
        fig.text(0.5, 0.005, foot + "; MAC-dequant: a x a multipliers, MAC-direct: "
                 "a x (w+1)", ha="center", fontsize=7)
        written.append(_save(fig, out / "lut_mac_ratio.png", bottom=0.03))

    # -- table storage with and without symmetrization ------------------------------------
    tabs = [r for r in rows if r["kind"] == "lut" and "group" in r["families"]]
    if tabs:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
        ax = axes[0]
        for a in sorted({r["a_bits"] for r in tabs}):
            for sym, ls in ((True, "-"), (False, "--")):
                pts = {}
                for r in _find(tabs, a_bits=a, symmetric=sym):
                    pts[r["g"]] = r["table_bits"]
                if pts:
                    gs = sorted(pts)
                    ax.plot(gs, [pts[g] for g in gs], ls, marker="o",
                            color="tab:blue" if a == 8 else "tab:green",
                            label=f"A{a}, {'symmetric' if sym else 'full'}")
        m0 = sorted({r["m"] for r in tabs})
        ax.set_xticks(sorted({r["g"] for r in tabs}))
        ax.set_yscale("log", base=2)
        ax.set_xlabel("group size g")
        ax.set_ylabel("table register bits per array (m tables)")
        ax.set_title(f"Table storage, m = {', '.join(map(str, m0))} tables "
                     "(entries x entry_width)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax = axes[1]
        sel_w = 2 if any(r["w_bits"] == 2 for r in tabs) else min(r["w_bits"] for r in tabs)
        sel_a = 8 if any(r["a_bits"] == 8 for r in tabs) else min(r["a_bits"] for r in tabs)
        gs = sorted({r["g"] for r in tabs})
        width = 0.38
        for i, sym in enumerate((True, False)):
            reg, lk, xs = [], [], []
            for g in gs:
                r = _one(tabs, a_bits=sel_a, w_bits=sel_w, g=g, symmetric=sym)
                if r is None:
                    continue
                xs.append(g + (i - 0.5) * width)
                reg.append(r["table_reg_ge"] / 1000)
                lk.append(r["lookup_ge"] / 1000)
            if not xs:
                continue
            hatch = "" if sym else "//"
            lab = "symmetric" if sym else "full"
            ax.bar(xs, reg, width, color="tab:blue", hatch=hatch, edgecolor="black",
                   label=f"table registers ({lab})")
            ax.bar(xs, lk, width, bottom=reg, color="tab:orange", hatch=hatch,
                   edgecolor="black", label=f"lookup muxes in the PEs ({lab})")
        n0 = sorted({r["n"] for r in tabs})
        ax.set_xticks(gs)
        ax.set_xlabel("group size g (left bar symmetric, right bar full table)")
        ax.set_ylabel("area (kGE)")
        ax.set_title(f"Table storage + lookup area, W{sel_w}A{sel_a}, "
                     f"m x n = {m0[0]} x {n0[0]}")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        fig.text(0.5, 0.005, "register bits: m * 2^(g-1) (symmetric) or m * 2^g entries of "
                 "a_bits + floor(log2 g) + 1 bits; area: 6 GE per register bit + synthesized "
                 "lookup (mux, index inversion, negation)", ha="center", fontsize=7)
        written.append(_save(fig, out / "table_storage.png", bottom=0.03))

    # -- area breakdown at the tile shape of the default point ----------------------------
    bars = []
    for w in (1, 2, 4):
        r = _one(rows, kind="lut", w_bits=w, a_bits=8, g=4, m=2, n=64, symmetric=True)
        if r:
            bars.append((f"LUT W{w}A8", r))
    for kind in ("mac_dequant", "mac_direct"):
        r = _one(rows, kind=kind, w_bits=2, a_bits=8, g=4, m=2, n=64)
        if r:
            bars.append((f"{kind} W2A8", r))
    if bars:
        fig, ax = plt.subplots(figsize=(9, 4.8))
        comps = [("top_local_ge", "control, table reg., output mux, weight decode",
                  "tab:gray"),
                 ("lookup_ge", "LUT lookup (mux + symmetrization)", "tab:orange"),
                 ("acc_core", "LUT accumulators (partial + acc)", "tab:blue"),
                 ("outbuf_est", "PE output buffers (est. 6 GE/bit)", "tab:cyan"),
                 ("correction_ge", "offset correction", "tab:olive"),
                 ("mac_core", "MAC PEs (multipliers, adders, acc)", "tab:red")]
        bottoms = [0.0] * len(bars)
        for key, lab, color in comps:
            vals = []
            for _, r in bars:
                lut = r["kind"] == "lut"
                if key == "acc_core":
                    v = (r["accumulator_ge"] - r["outbuf_ge"]) if lut else 0.0
                elif key == "outbuf_est":
                    v = r["outbuf_ge"]
                elif key == "mac_core":
                    v = (r["mac_pe_ge"] - r["outbuf_ge"]) if not lut else 0.0
                else:
                    v = r[key] or 0.0
                vals.append(v / 1000)
            ax.bar(range(len(bars)), vals, bottom=bottoms, color=color, label=lab,
                   edgecolor="black", linewidth=0.5)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels([b[0] for b in bars])
        ax.set_ylabel("area (kGE)")
        ax.set_title("Area breakdown, tile 2 x 64, g = 4 "
                     "(MACs/cycle: LUT 512 / w, MAC 512)")
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
        written.append(_save(fig, out / "area_breakdown.png", bottom=0.03))
    fp = _plot_fp(rows, out, foot, plain_log)
    return written + ([fp] if fp else [])


def _plot_fp(rows, out, foot, plain_log):
    """``fp_lut_mac.png``: density vs weight bits of the FP LUT tiles and the FP MACs (t = 8,
    b = 16, g = 4), and the LUT / FP MAC density ratio of every FP LUT point."""
    import matplotlib.pyplot as plt
    fp = [r for r in rows if "fp" in r["families"]]
    ft = fp_ratio_table(rows)
    if not fp or not ft:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    ax = axes[0]
    for act in sorted({r["act"] for r in fp}):
        ls = "-" if act == "fp16" else "--"
        for shape in sorted({r["shape"] for r in fp if r["kind"] == "lut"}):
            pts = sorted((r for r in _find(fp, kind="lut", act=act, shape=shape)
                          if r["table_bits_q"] == 8 and r["scale_block"] == 16
                          and r["g"] == 4),
                         key=lambda r: r["w_bits"])
            if pts:
                ax.plot([r["w_bits"] for r in pts], [r["density_per_kge"] for r in pts], ls,
                        marker="o", label=f"LUT q {shape} {act.upper()}")
        for kind in ("mac_dequant", "mac_direct"):
            for shape in sorted({r["shape"] for r in fp if r["kind"] == kind}):
                pts = sorted(_find(fp, kind=kind, act=act, shape=shape),
                             key=lambda r: r["w_bits"])
                if pts and pts[0]["g"] in (4, 16):      # the equal-size and the g = 4 tiles
                    color, marker = MAC_STYLE[kind]
                    ax.plot([r["w_bits"] for r in pts], [r["density_per_kge"] for r in pts],
                            ls, color=color, marker=marker, alpha=0.6 if "x16" not in shape
                            else 1.0, label=f"{kind} {shape} {act.upper()}")
    ax.set_xticks(sorted({r["w_bits"] for r in fp}))
    ax.set_xlabel("weight bits w_bits")
    ax.set_ylabel("compute density (MACs/cycle per 1000 GE)")
    ax.set_title("FP activations: density vs weight bits (LUT t = 8, b = 16)")
    plain_log(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    labels = [f"{r['act'].upper()} W{r['w_bits']} {r['shape']}\nt{r['table_bits_q']} "
              f"b{r['scale_block']}" for r in ft]
    width = 0.2
    for i, (key, lab, color) in enumerate((
            ("own_mac_dequant", "/ dequant M8N4K16", "tab:red"),
            ("own_mac_direct", "/ direct M8N4K16", "tab:gray"),
            ("tile_mac_dequant", "/ dequant, same tile", "salmon"),
            ("tile_mac_direct", "/ direct, same tile", "silver"))):
        xs = [j + (i - 1.5) * width for j, r in enumerate(ft) if r[key] is not None]
        ys = [r[key] for r in ft if r[key] is not None]
        if xs:
            ax.bar(xs, ys, width, color=color, edgecolor="black", linewidth=0.5, label=lab)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(range(len(ft)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("density ratio LUT / FP MAC (> 1: LUT denser)")
    ax.set_title("LUT (q tables) / FP MAC density ratio per FP LUT point")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
    return _save(fig, out / "fp_lut_mac.png", bottom=0.03)
