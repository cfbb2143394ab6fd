"""GPTQ/OPTQ weight quantization (Frantar et al., ICLR 2023, arXiv 2210.17323, Algorithm 1)
without lazy batching, in NumPy, with the quantizers of ``gen.model_layer``.

For ``y = x @ W`` (``W`` is K x N, in x out) and calibration inputs ``X``, the rows of ``W``
(input dimensions) are quantized one at a time; the error of row ``i``, scaled by the inverse
Hessian's Cholesky factor, is spread over the rows not yet quantized, so that
``||X W - X W_q||`` (not ``||W - W_q||``) is what the quantizer minimizes:

    H = X^T X + damp * I          (damp = 1 % of the mean diagonal)
    U = cholesky(H^-1), upper:  H^-1 = U^T U
    for i in 0 .. K-1:
        at the start of each scale group: scales from the current rows of the group
        q_i = quantize(W_i);  e = (W_i - q_i s) / U_ii;  W_{i+1:} -= U_{i, i+1:}^T e

Calibration text is separate from the evaluation sentences (``CALIBRATION``).
"""
from __future__ import annotations

import numpy as np

from gen.model_layer import quantize_weights

__all__ = ["gptq", "CALIBRATION", "CALIBRATION_EXTRA"]

CALIBRATION = (
    "The committee will publish its annual report on energy prices in March.",
    "Rivers carry sediment from the mountains down to the coastal plains.",
    "She practised the piano every evening before her final exam.",
    "Engineers tested the new engine under extreme temperatures.",
    "A small bakery on the corner sells cinnamon rolls and coffee.",
    "The museum opened an exhibition of ancient Egyptian jewellery.",
    "Migrating birds travel thousands of kilometres each autumn.",
    "The software update fixed several security problems.",
    "Farmers harvested wheat early because of the dry summer.",
    "His brother moved to Canada to study marine biology.",
    "The referee stopped the match after a serious injury.",
    "Solar panels on the roof provide most of the building's power.",
    "Please remember to lock the door when you leave the house.",
    "The novel tells the story of a family during the war.",
    "Researchers measured how quickly the ice sheet is melting.",
    "The restaurant was crowded, so we ate in the garden.",
    "Vaccines train the immune system to recognise a virus.",
    "The city plans to build a new tram line next year.",
    "Our teacher explained fractions with slices of pizza.",
    "A strong wind knocked down several trees along the road.",
    "The company hired fifty new employees in its Berlin office.",
    "Astronomers discovered a planet orbiting a distant star.",
    "He repaired the old bicycle with parts from a flea market.",
    "The children built a sandcastle near the waves.",
)

#: 24 more calibration sentences (used by the ``-cal48`` W4 schemes, gen/model/w4.py): a
#: 384-wide layer's Hessian from 24 sentences (~300 tokens) is not even full rank
CALIBRATION_EXTRA = (
    "The pilot announced a short delay because of fog at the airport.",
    "Our neighbours adopted two kittens from the animal shelter.",
    "The chemistry lesson covered acids, bases and salts.",
    "A thunderstorm cut the power in half of the town.",
    "She writes short poems about the sea and the sky.",
    "The hospital opened a new wing for children last spring.",
    "Tourists queued for hours to climb the old tower.",
    "The bank raised interest rates for the third time this year.",
    "He learned to sail on a lake in the mountains.",
    "The printer on the second floor is out of paper again.",
    "Wolves were seen near the village for the first time in decades.",
    "The football club signed a young striker from Brazil.",
    "Students protested against the rise in tuition fees.",
    "A cup of green tea contains less caffeine than coffee.",
    "The detective found a hidden letter inside the clock.",
    "Heavy snow closed the mountain pass for three days.",
    "The app lets you track your daily steps and sleep.",
    "They celebrated their anniversary at a small Italian restaurant.",
    "The river burst its banks after weeks of rain.",
    "Satellites help farmers decide when to water their crops.",
    "My uncle collects old coins from around the world.",
    "The court ruled that the contract was not valid.",
    "A volunteer group cleaned the beach on Sunday morning.",
    "The laptop battery lasts about ten hours on a single charge.",
)


def gptq(w, x, fmt, w_bits, group=None, damp=0.01):
    """Quantize ``w`` (K x N) for inputs like ``x`` (rows x K): ``(values, scales)`` in the
    layout of ``gen.model_layer.quantize_weights_grouped`` (a scale per ``group`` rows along K
    and output channel; ``group=None``: per channel)."""
    w = np.array(w, dtype=np.float64)
    k, n = w.shape
    group = group or k
    if k % group:
        raise ValueError(f"K = {k} is not a multiple of the weight group {group}")
    h = x.T @ x
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[dead] = 0.0
    h += damp * np.mean(np.diag(h)) * np.eye(k)
    u = np.linalg.cholesky(np.linalg.inv(h)).T          # upper: H^-1 = U^T U
    q = np.zeros((k, n), dtype=np.int64)
    scales = np.zeros((k // group, n))
    lo, hi = (-1, 1) if fmt == "ternary" else (-(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1)
    for i in range(k):
        if i % group == 0:
            _, scales[i // group] = quantize_weights(w[i:i + group], fmt, w_bits)
        s = scales[i // group]
        q[i] = np.clip(np.rint(w[i] / s), lo, hi)
        err = (w[i] - q[i] * s) / u[i, i]
        w[i + 1:] -= np.outer(u[i, i + 1:], err)
    return q, scales
