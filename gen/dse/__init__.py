"""Design-space exploration of the LUT Tensor Core array: ``python -m gen.dse [-j N]``
(or ``python scripts/dse.py``).

Sweeps design points, synthesizes each one with the project's Yosys flow
(:func:`gen.synth.synthesize`, generic gates, area in gate equivalents from :mod:`gen.area`),
and writes ``points.csv``, ``points.json``, ``summary.md`` and PNG plots into ``--out``
(default ``reports/dse/``).

The sweep (``--k-max``, default 1024 activations, sizes every accumulator alike)
-----------------------------------------------------------------------------------
``tile``   tile shape at equal MACs per cycle: ``m x n`` in 1x128, 2x64, 4x32, 8x16, 16x8 at
           g = 4 (m*n*g = 512, the paper's array size), for the symmetric LUT array and both
           MAC baselines (``mac_dequant``: a_bits x a_bits multipliers, weights dequantized;
           ``mac_direct``: a_bits x (w_bits+1) multipliers), w_bits 1, 2, 4, a_bits 8 and 16.
``mac_shape`` the MAC baselines at longer dot products with the same 512 multiplies per cycle,
           M8N4K16 (the paper's MAC tile) and M8N8K8, so that "each design at its best shape"
           does not handicap the MAC (:func:`gen.synth.comparison.mac_config`).
``group``  group size g = 2..6 at m = 2, n = 64, symmetric on and off, w_bits 1, 2, 4,
           a_bits 8 and 16; the MAC baselines at the same g (w_bits 2).

``fp``     FP16 activations (``--fp-act fp16,bf16`` adds BF16) through the LUT array with ``q``
           tables (``table_bits`` t, ``scale_block`` b; docs/fp-lut.md) against the FP MAC
           baselines of ``gen.synth --compare --act`` (the FP16 dequantizing tensor core and
           the FP16 x INT-(w+1) direct MAC): W1, W2, W4 at M2N64K4 and M4N32K4 (t 8, b 16);
           at W2 and M2N64 g = 2, t = 6, b = 32 and 64 one at a time; the MACs at M8N4K16
           and at the LUT tiles. Configs from :func:`gen.synth.fp_comparison.fp_lut_config`
           and :func:`gen.synth.comparison.mac_config`; no logic depth (as ``--no-depth``).

``--quick`` runs 18 small points (n <= 16, a_bits 8, two FP16 points at M1N2K4) that cover
every plot; ``make test`` uses it. A point that appears in several families is synthesized
once. ``--only TEXT`` keeps the points whose label contains TEXT.

``--ppa area,timing[,power]`` adds real-cell columns from :mod:`gen.ppa` (µm², Fmax,
TOPS/mm² at each design's Fmax and at a common clock, pJ/MAC, TOPS/W), cached apart from
the generic-gate records (:mod:`gen.dse.ppa`).

Figures
-------
* MACs per cycle: ``m*n*g / w_bits`` for the LUT array (one weight bit-plane per cycle, at the
  build's full weight precision), ``m*n*g`` for a MAC array (one group per cycle); the
  formulas of :mod:`gen.synth.comparison`, shared with ``gen.synth --compare``.
* Compute density: MACs per cycle per 1000 GE of the whole synthesized array (controller, table
  register, PEs with their accumulators and double-buffered outputs, offset correction).
* ``pe_density``: the same, counting only the PEs (lookup + accumulator, or the MAC PE).
* Table storage: ``m * entries * entry_width`` register bits (``entries = 2^(g-1)`` symmetric,
  ``2^g`` full) at 24 transistors (6 GE) per bit, plus the measured lookup multiplexers.

Only completed synthesis runs give figures: :func:`gen.synth.synthesize` raises when a Yosys
log does not end with ``End of script.``; such a point is listed as failed in ``points.json``,
left out of the CSV and the plots, not cached, and makes the run exit 1.

Cache
-----
Every point's record is stored in ``<cache>/<key>.json`` (default ``reports/dse/cache/``); the
key covers the emitted netlist's hash, the Yosys script, the figure-producing code, the area
weights and the tool versions (:mod:`gen.dse.cache`). A re-run only synthesizes points whose
key is new; with nothing changed it finishes in seconds.

Modules: :mod:`~gen.dse.points` (the sweep), :mod:`~gen.dse.cache` (keys, cache files),
:mod:`~gen.dse.ppa` (the PPA columns),
:mod:`~gen.dse.record` (one point's record), :mod:`~gen.dse.run` (running points, the
pluggable executor, progress), :mod:`~gen.dse.report` (rows, CSV, ratios, summary),
:mod:`~gen.dse.plots`, :mod:`~gen.dse.cli`.
"""
from __future__ import annotations

from .cache import flow_hash, generator_hash, key_context, point_key
from .points import (DEFAULT_K_MAX, DEFAULT_POINT, FAMILIES, FP_MAC_SHAPE, FP_SHAPES,
                     FULL_SHAPES, KINDS, Point, Sweep, build_sweep, fp_points)
from .run import Outcome, Progress, SourcesChanged, process_pool, run_one, run_point, run_sweep

__all__ = ["Point", "Sweep", "build_sweep", "DEFAULT_K_MAX", "DEFAULT_POINT", "FAMILIES",
           "FULL_SHAPES", "KINDS", "FP_SHAPES", "FP_MAC_SHAPE", "fp_points", "key_context",
           "point_key", "flow_hash", "generator_hash",
           "Outcome", "Progress", "SourcesChanged", "process_pool", "run_one", "run_point",
           "run_sweep", "main"]


def main(argv=None):
    from .cli import main as cli_main
    return cli_main(argv)
