"""Reading Yosys' statistics: ``stat -json`` and ``ltp`` output into per-module-type figures.

Modules are grouped into *module types* by name pattern (``pe_0_3`` -> ``pe``) and identical
statistics, and each type is reported once with its instance count, its local figures (cells
of the module itself), its figures with submodules, and its total (local x instances). Area
is costed with the weight table of :mod:`gen.area`.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from .. import area
from .yosys import SynthesisError

__all__ = ["analyze", "load_json", "type_label"]

_LTP_RE = re.compile(r"^Longest topological path in (\S+) \(length=(\d+)\)", re.M)


def _unesc(name):
    return name[1:] if name.startswith("\\") else name


def load_json(path, log):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SynthesisError(f"cannot read Yosys output {path}: {e}; log {log}", log) from e


def type_label(name):
    """``top.pe_0_3`` -> ``top.pe``: module-type label of a per-instance module name."""
    return ".".join(re.sub(r"(_\d+)+$", "", part) or part for part in name.split("."))


def analyze(stat, ltp_text, top, log, stat_lib=None):
    """Per-module-type and total figures from Yosys' ``stat -json`` data and ``ltp`` text.

    Returns ``(types, total)``. Instances are counted through the hierarchy under ``top``;
    every cell is costed with :mod:`gen.area`, cross-checked against Yosys' own transistor
    estimate and design totals (a mismatch raises :class:`SynthesisError`). Modules are grouped
    into types by name pattern (``pe_0_3`` -> ``pe``) and identical statistics.
    """
    mods = {_unesc(k): v for k, v in stat["modules"].items()}
    top = _unesc(top)
    if top not in mods:
        raise SynthesisError(f"top module {top!r} missing from Yosys' statistics; log {log}",
                             log)
    depth = {_unesc(m.group(1)): int(m.group(2)) for m in _LTP_RE.finditer(ltp_text)}
    local = {n: {t: c for t, c in m["num_cells_by_type"].items()} for n, m in mods.items()}
    children = {n: {_unesc(t): c for t, c in cells.items() if _unesc(t) in mods}
                for n, cells in local.items()}
    prims = {n: {t: c for t, c in cells.items() if _unesc(t) not in mods}
             for n, cells in local.items()}

    # instances of each module under top
    count = Counter()

    def visit(n, k):
        count[n] += k
        for c, j in sorted(children[n].items()):
            visit(c, k * j)
    visit(top, 1)

    # hierarchical primitive cells of each module (with its submodules)
    hier_cache = {}

    def hier(n):
        if n not in hier_cache:
            acc = Counter(prims[n])
            for c, j in children[n].items():
                for t, v in hier(c).items():
                    acc[t] += v * j
            hier_cache[n] = dict(acc)
        return hier_cache[n]

    try:
        for n in count:
            area.check_against_yosys(hier(n), mods[n]["estimated_num_transistors"])
        cost_local = {n: area.cost_cells(prims[n]) for n in count}
        cost_hier = {n: area.cost_cells(hier(n)) for n in count}
    except ValueError as e:
        raise SynthesisError(f"{e}; log {log}", log) from e

    # cross-check the instance arithmetic against Yosys' own design totals
    total_cells = Counter()
    for n, k in count.items():
        for t, v in prims[n].items():
            total_cells[t] += v * k
    design = {t: c for t, c in stat["design"]["num_cells_by_type"].items()
              if _unesc(t) not in mods}
    if dict(total_cells) != design:
        raise SynthesisError(f"per-module cells times instances {dict(total_cells)} differ from "
                             f"Yosys' design totals {design}; log {log}", log)

    # group modules into types: same name pattern and same statistics
    order = []

    def dfs(n):
        if n not in order:
            order.append(n)
            for c in sorted(children[n]):
                dfs(c)
    dfs(top)
    label_of = {n: type_label(n) for n in order}
    groups = {}
    for n in order:
        sig = (label_of[n], json.dumps(prims[n], sort_keys=True),
               json.dumps({label_of[c]: j for c, j in sorted(children[n].items())},
                          sort_keys=True), depth.get(n))
        groups.setdefault(sig, []).append(n)
    labels = Counter(sig[0] for sig in groups)
    seen = Counter()
    types = []
    for sig, members in groups.items():
        n0 = members[0]
        label = sig[0] if len(members) > 1 or sig[0] != n0 else n0
        if labels[sig[0]] > 1:
            seen[sig[0]] += 1
            label = f"{sig[0]}#{seen[sig[0]]}"
        inst = sum(count[n] for n in members)
        entry = {
            "type": label,
            "modules": members,
            "instances": inst,
            "is_top": n0 == top,
            "submodules": {label_of[c]: j for c, j in sorted(children[n0].items())},
            "local": {"cells": dict(sorted(prims[n0].items())),
                      "num_cells": sum(prims[n0].values()), **cost_local[n0]},
            "with_submodules": {"cells": dict(sorted(hier(n0).items())),
                                "num_cells": sum(hier(n0).values()), **cost_hier[n0]},
            "depth": depth.get(n0),
            "total_local": {"num_cells": sum(prims[n0].values()) * inst,
                            "transistors": cost_local[n0]["transistors"] * inst,
                            "ge": cost_local[n0]["ge"] * inst,
                            "ff_bits": cost_local[n0]["ff_bits"] * inst},
        }
        if stat_lib is not None:
            lm = {_unesc(k): v for k, v in stat_lib["modules"].items()}.get(n0, {})
            entry["liberty_area_with_submodules"] = lm.get("area")
        types.append(entry)

    total_cost = area.cost_cells(dict(total_cells))
    total = {"cells": dict(sorted(total_cells.items())), "num_cells": sum(total_cells.values()),
             **total_cost, "depth": depth.get(top)}
    if total_cost["transistors"] != sum(t["total_local"]["transistors"] for t in types):
        raise SynthesisError("module-type totals do not add up to the design total", log)
    if stat_lib is not None:
        total["liberty_area"] = stat_lib["design"].get("area")
        total["liberty_sequential_area"] = stat_lib["design"].get("sequential_area")
        total["liberty_cells"] = dict(sorted(stat_lib["design"]["num_cells_by_type"].items()))
    return types, total
