"""A note-axis scan of LSTM layers compiled by numba: one step of many pieces, drawn pitch by
pitch under the sampler's rules, without a Python round trip per pitch.

It draws exactly as :meth:`tuneforge.drawer.StepDrawer.draw_pitch` and ``draw_articulation``
do (the same uniforms, temperature, forbidden pitches, polyphony limit and melody), in float32;
:mod:`tuneforge.models.note_axis` falls back to the pitch-by-pitch torch loop where this kernel
does not apply. Importing this module imports numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# Reassociating the dot products lets them vectorize; the draws stay those of the torch loop
# (a uniform would have to fall within float rounding of a probability to differ).
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def scan_lstm(
    base_gates,  # (N, P, 4H) first layer's gates from the context, biases included
    value_weights,  # (4H,) first layer's input weight of "the pitch below sounds"
    first_hh,  # (4H, H)
    rest_ih,  # (L - 1, 4H, H)
    rest_hh,  # (L - 1, 4H, H)
    rest_bias,  # (L - 1, 4H)
    out_weight,  # (V, H)
    out_bias,  # (V,)
    direct,  # (N, P) added to the play logits
    uniform,  # (N, P)
    articulation_uniform,  # (N, P)
    allowed,  # (P,) bool
    inverse_temperature,
    max_polyphony,  # -1: none
    fixed,  # (N, P) bool
    fixed_value,  # (N, P) bool
    previous,  # (N, P) bool
    articulation,  # bool
    play_logits,  # out (N, P)
    play,  # out (N, P) bool
    probs,  # out (N, P)
    articulation_logits,  # out (N, P)
    held,  # out (N, P) bool
    struck,  # out (N, P) bool: held notes struck again
    onsets,  # out (N, P) bool
):
    rows, pitches, four = base_gates.shape
    width = four // 4
    layers = rest_ih.shape[0] + 1
    h = np.zeros((layers, width), dtype=base_gates.dtype)
    c = np.zeros((layers, width), dtype=base_gates.dtype)
    gates = np.zeros(four, dtype=base_gates.dtype)
    for n in range(rows):
        h[:] = 0.0
        c[:] = 0.0
        below = 0.0
        count = 0
        for p in range(pitches):
            for layer in range(layers):
                if layer == 0:
                    for k in range(four):
                        total = base_gates[n, p, k] + value_weights[k] * below
                        for j in range(width):
                            total += first_hh[k, j] * h[0, j]
                        gates[k] = total
                else:
                    for k in range(four):
                        total = rest_bias[layer - 1, k]
                        for j in range(width):
                            total += rest_ih[layer - 1, k, j] * h[layer - 1, j]
                            total += rest_hh[layer - 1, k, j] * h[layer, j]
                        gates[k] = total
                for j in range(width):  # torch's gate order: input, forget, cell, output
                    i = _sigmoid(gates[j])
                    f = _sigmoid(gates[width + j])
                    g = math.tanh(gates[2 * width + j])
                    o = _sigmoid(gates[3 * width + j])
                    c[layer, j] = f * c[layer, j] + i * g
                    h[layer, j] = o * math.tanh(c[layer, j])
            top = layers - 1
            logit = out_bias[0] + direct[n, p]
            for j in range(width):
                logit += out_weight[0, j] * h[top, j]
            prob = _sigmoid(logit * inverse_temperature) if allowed[p] else 0.0
            if max_polyphony >= 0 and count >= max_polyphony:
                prob = 0.0
            sounds = uniform[n, p] < prob
            if fixed[n, p]:
                sounds = fixed_value[n, p]
            elif sounds:
                count += 1
            play_logits[n, p] = logit
            play[n, p] = sounds
            probs[n, p] = prob
            again = False
            if articulation:
                art = out_bias[1]
                for j in range(width):
                    art += out_weight[1, j] * h[top, j]
                articulation_logits[n, p] = art
                if sounds and previous[n, p]:
                    held[n, p] = True
                    again = articulation_uniform[n, p] < _sigmoid(art * inverse_temperature)
                    struck[n, p] = again
            onsets[n, p] = (sounds and not previous[n, p]) or again
            below = 1.0 if sounds else 0.0
