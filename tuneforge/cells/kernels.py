"""numba loops of the recurrences, forward and backward.

Two kinds: whole-window recurrences of the diagonal cells (:mod:`.diagonal`), and one step's
element-wise work around the matrix products of the GRU family, RRU and Mogrifier, whose
products stay with torch (:mod:`.gru_recurrence`, :mod:`.rru`, :mod:`.mogrifier`).

This module imports numba; :mod:`.jit` imports it only when a compiled path is first taken.
All kernels live in this one file, past the usual length, on purpose: numba's on-disk cache is
invalidated by a change of the file that holds a function, not of the files it calls into, so
the helpers they share (the float32 tanh) must sit beside them.

Whole-window kernels are serial and release the GIL (``nogil``): :func:`.jit.launch` runs them
on slices of the batch in parallel threads, each slice through its whole time loop with no
synchronisation between steps. numba's own ``parallel=True`` would do the same at three to four
times the compile time. Inner loops run over contiguous units of one row and step so that they
vectorize; ranges start at zero because a loop over ``range(lo, hi)`` keeps numba's
negative-index checks, which stop vectorization. Each kernel is a time loop around a step
function on rows (1-D arrays), the first step (or, backward, the last) called with the initial
state: choosing the previous row inside the loop (``hs[t - 1] if t > 0 else h0``) hides the
row's bounds from LLVM and made the loops four times slower (measured). Short loops, one per
gate, keep the float32 tanh's constants in registers (several in one loop body spill them:
twice as slow, measured).

Diagonal cells: with every recurrent matrix diagonal, unit ``j`` of sequence ``b`` is a scalar
recurrence of its own. Arrays are batch-major, as the layers take and give them: ``a``
(B, T, G H) holds the gate pre-activations from the input (``W x + b``) in torch's gate order,
``u`` (G, H) the diagonals.

Arithmetic stays in the arrays' dtype: ``one`` is passed as a scalar of that dtype, because a
Python literal would promote float32 to float64. ``error_model="numpy"`` drops Python's
division-by-zero checks, whose branches would keep loops from vectorizing. Backward kernels
carry the running gradients of h (and c) in their ``grad_h0`` (``grad_c0``) outputs, and add the
gradient of ``u`` per (row, gate, unit) into ``grad_u``, which the caller sums over rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_STEP = {"cache": True, "error_model": "numpy"}

# float32 tanh as a rational function on [-c, c] (Eigen's and TensorFlow's float tanh): libm's
# tanhf does not vectorize and costs ~30 ns, this ~1 ns; it is within 4e-7 of tanh. float64
# keeps libm's exact functions.
_CLAMP = np.float32(7.90531110763549805)
_ALPHA = [np.float32(v) for v in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03,
)]  # fmt: skip
_BETA = [np.float32(v) for v in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03,
)]  # fmt: skip
_A13, _A11, _A9, _A7, _A5, _A3, _A1 = _ALPHA
_B6, _B4, _B2, _B0 = _BETA
_HALF32 = np.float32(0.5)


def _tanh32(x):  # pragma: no cover - compiled
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


def _sigmoid32(x):  # pragma: no cover - compiled
    return _HALF32 + _HALF32 * tanh(_HALF32 * x)


def tanh(x):
    """tanh in the dtype of ``x`` (compiled: see :func:`_tanh32` for float32)."""
    return math.tanh(x)


def sigmoid(x):
    """The logistic sigmoid in the dtype of ``x``."""
    return 1.0 / (1.0 + math.exp(-x))


@overload(tanh)
def _tanh_impl(x):
    if x == types.float32:
        return _tanh32
    return lambda x: math.tanh(x)


@overload(sigmoid)
def _sigmoid_impl(x):
    if x == types.float32:
        return _sigmoid32
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@njit(**_STEP)
def _rnn_step(at, ht, h_prev, u0):  # pragma: no cover - compiled
    for j in range(ht.shape[0]):
        ht[j] = tanh(at[j] + u0[j] * h_prev[j])


@njit(**_JIT)
def rnn_forward(a, hs, h0, u):  # pragma: no cover - compiled
    """h_t = tanh(a_t + u h_{t-1})."""
    batch, steps, _ = a.shape
    for b in range(batch):
        _rnn_step(a[b, 0], hs[b, 0], h0[b], u[0])
        for t in range(1, steps):
            _rnn_step(a[b, t], hs[b, t], hs[b, t - 1], u[0])


@njit(**_STEP)
def _rnn_step_back(ht, h_prev, grad_ht, grad_at, grad_u0, grad_h, u0, one):  # pragma: no cover
    for j in range(ht.shape[0]):
        gp = (grad_h[j] + grad_ht[j]) * (one - ht[j] * ht[j])
        grad_at[j] = gp
        grad_u0[j] += gp * h_prev[j]
        grad_h[j] = gp * u0[j]


@njit(**_JIT)
def rnn_backward(hs, h0, grad_hs, grad_a, grad_u, grad_h0, u, one):  # pragma: no cover
    """Gradients of a, u (per row) and h0; ``grad_h0`` starts at zero and carries dL/dh."""
    batch, steps, _ = hs.shape
    for b in range(batch):
        gu, gh = grad_u[b, 0], grad_h0[b]
        for t in range(steps - 1, 0, -1):
            _rnn_step_back(hs[b, t], hs[b, t - 1], grad_hs[b, t], grad_a[b, t], gu, gh, u[0], one)
        _rnn_step_back(hs[b, 0], h0[b], grad_hs[b, 0], grad_a[b, 0], gu, gh, u[0], one)


@njit(**_STEP)
def _lstm_step(at, st, ct, tct, ht, h_prev, c_prev, u):  # pragma: no cover - compiled
    n = ht.shape[0]
    ai, af, ag, ao = at[:n], at[n : 2 * n], at[2 * n : 3 * n], at[3 * n :]
    si, sf, sg, so = st[:n], st[n : 2 * n], st[2 * n : 3 * n], st[3 * n :]
    ui, uf, ug, uo = u[0], u[1], u[2], u[3]
    for j in range(n):
        si[j] = sigmoid(ai[j] + ui[j] * h_prev[j])
    for j in range(n):
        sf[j] = sigmoid(af[j] + uf[j] * h_prev[j])
    for j in range(n):
        sg[j] = tanh(ag[j] + ug[j] * h_prev[j])
    for j in range(n):
        so[j] = sigmoid(ao[j] + uo[j] * h_prev[j])
    for j in range(n):
        ct[j] = sf[j] * c_prev[j] + si[j] * sg[j]
    for j in range(n):
        tct[j] = tanh(ct[j])
    for j in range(n):
        ht[j] = so[j] * tct[j]


@njit(**_JIT)
def lstm_forward(a, acts, cs, tcs, hs, h0, c0, u):  # pragma: no cover - compiled
    """torch's LSTM (gates i, f, g, o) with diagonal recurrence; keeps what backward reads.

    ``acts`` gets i, f, g, o after their nonlinearities, ``tcs`` tanh(c).
    """
    batch, steps, _ = a.shape
    for b in range(batch):
        _lstm_step(a[b, 0], acts[b, 0], cs[b, 0], tcs[b, 0], hs[b, 0], h0[b], c0[b], u)
        for t in range(1, steps):
            _lstm_step(
                a[b, t], acts[b, t], cs[b, t], tcs[b, t], hs[b, t], hs[b, t - 1], cs[b, t - 1], u
            )


@njit(**_STEP)
def _lstm_step_back(
    st, tct, h_prev, c_prev, grad_ht, grad_at, grad_u, grad_h, grad_c, u, one
):  # pragma: no cover - compiled
    n = tct.shape[0]
    si, sf, sg, so = st[:n], st[n : 2 * n], st[2 * n : 3 * n], st[3 * n :]
    gi_t, gf_t = grad_at[:n], grad_at[n : 2 * n]
    gg_t, go_t = grad_at[2 * n : 3 * n], grad_at[3 * n :]
    # Two loops, each writing few arrays: with all ten writes in one, LLVM does not
    # vectorize it (too many possible overlaps to check at run time).
    for j in range(n):
        i, f, g, o = si[j], sf[j], sg[j], so[j]
        tc = tct[j]
        gh = grad_h[j] + grad_ht[j]
        gc = grad_c[j] + gh * o * (one - tc * tc)
        gi_t[j] = gc * g * i * (one - i)
        gf_t[j] = gc * c_prev[j] * f * (one - f)
        gg_t[j] = gc * i * (one - g * g)
        go_t[j] = gh * tc * o * (one - o)
        grad_c[j] = gc * f
    gui, guf, gug, guo = grad_u[0], grad_u[1], grad_u[2], grad_u[3]
    ui, uf, ug, uo = u[0], u[1], u[2], u[3]
    for j in range(n):
        gi, gf, gg, go = gi_t[j], gf_t[j], gg_t[j], go_t[j]
        hp = h_prev[j]
        gui[j] += gi * hp
        guf[j] += gf * hp
        gug[j] += gg * hp
        guo[j] += go * hp
        grad_h[j] = gi * ui[j] + gf * uf[j] + gg * ug[j] + go * uo[j]


@njit(**_JIT)
def lstm_backward(
    acts, cs, tcs, hs, h0, c0, grad_hs, grad_a, grad_u, grad_h0, grad_c0, u, one
):  # pragma: no cover - compiled
    """Gradients of a, u (per row), h0 and c0; ``grad_c0`` starts as dL/dc_T."""
    batch, steps, _ = acts.shape
    for b in range(batch):
        gu, gh, gc = grad_u[b], grad_h0[b], grad_c0[b]
        for t in range(steps - 1, 0, -1):
            _lstm_step_back(
                acts[b, t], tcs[b, t], hs[b, t - 1], cs[b, t - 1], grad_hs[b, t], grad_a[b, t],
                gu, gh, gc, u, one,
            )  # fmt: skip
        _lstm_step_back(
            acts[b, 0], tcs[b, 0], h0[b], c0[b], grad_hs[b, 0], grad_a[b, 0], gu, gh, gc, u, one
        )


@njit(**_STEP)
def _gru_step(at, st, ht, h_prev, u):  # pragma: no cover - compiled
    n = ht.shape[0]
    ar, az, an = at[:n], at[n : 2 * n], at[2 * n :]
    sr, sz, sn = st[:n], st[n : 2 * n], st[2 * n :]
    ur, uz, un = u[0], u[1], u[2]
    for j in range(n):
        sr[j] = sigmoid(ar[j] + ur[j] * h_prev[j])
    for j in range(n):
        sz[j] = sigmoid(az[j] + uz[j] * h_prev[j])
    for j in range(n):
        sn[j] = tanh(an[j] + sr[j] * (un[j] * h_prev[j]))
    for j in range(n):
        ht[j] = sn[j] + sz[j] * (h_prev[j] - sn[j])


@njit(**_JIT)
def gru_forward(a, acts, hs, h0, u):  # pragma: no cover - compiled
    """torch's GRU (gates r, z, n) with diagonal recurrence and no b_hn.

    ``n = tanh(a_n + r u_n h)``, ``h' = (1 - z) n + z h``; ``acts`` keeps r, z, n.
    """
    batch, steps, _ = a.shape
    for b in range(batch):
        _gru_step(a[b, 0], acts[b, 0], hs[b, 0], h0[b], u)
        for t in range(1, steps):
            _gru_step(a[b, t], acts[b, t], hs[b, t], hs[b, t - 1], u)


@njit(**_STEP)
def _gru_step_back(st, h_prev, grad_ht, grad_at, grad_u, grad_h, u, one):  # pragma: no cover
    n = h_prev.shape[0]
    sr, sz, sn = st[:n], st[n : 2 * n], st[2 * n :]
    gr_t, gz_t, gn_t = grad_at[:n], grad_at[n : 2 * n], grad_at[2 * n :]
    gur, guz, gun = grad_u[0], grad_u[1], grad_u[2]
    ur, uz, un = u[0], u[1], u[2]
    for j in range(n):
        r, z, cand = sr[j], sz[j], sn[j]
        hp = h_prev[j]
        g = grad_h[j] + grad_ht[j]
        gn = g * (one - z) * (one - cand * cand)
        gz = g * (hp - cand) * z * (one - z)
        gr = gn * un[j] * hp * r * (one - r)
        gr_t[j] = gr
        gz_t[j] = gz
        gn_t[j] = gn
        gur[j] += gr * hp
        guz[j] += gz * hp
        gun[j] += gn * r * hp
        grad_h[j] = g * z + gr * ur[j] + gz * uz[j] + gn * r * un[j]


@njit(**_JIT)
def gru_backward(acts, hs, h0, grad_hs, grad_a, grad_u, grad_h0, u, one):  # pragma: no cover
    """Gradients of a, u (per row) and h0 of :func:`gru_forward`."""
    batch, steps, _ = acts.shape
    for b in range(batch):
        gu, gh = grad_u[b], grad_h0[b]
        for t in range(steps - 1, 0, -1):
            _gru_step_back(acts[b, t], hs[b, t - 1], grad_hs[b, t], grad_a[b, t], gu, gh, u, one)
        _gru_step_back(acts[b, 0], h0[b], grad_hs[b, 0], grad_a[b, 0], gu, gh, u, one)


# The GRU of the full and gate-variant cells: the recurrent product stays with torch (oneDNN),
# and each step's element-wise work is one call here instead of half a dozen torch ops. Arrays
# are one step's (B, k) blocks; ``gh`` is ``W_hh h + b_hh`` in the gate order r, z, n.


@njit(**_STEP)
def _gru_gates_row(gi, gh, h_prev, act, h):  # pragma: no cover - compiled
    n = h.shape[0]
    gir, giz, gin = gi[:n], gi[n : 2 * n], gi[2 * n :]
    ghr, ghz, ghn = gh[:n], gh[n : 2 * n], gh[2 * n :]
    sr, sz, sn = act[:n], act[n : 2 * n], act[2 * n :]
    for j in range(n):
        sr[j] = sigmoid(gir[j] + ghr[j])
    for j in range(n):
        sz[j] = sigmoid(giz[j] + ghz[j])
    for j in range(n):
        sn[j] = tanh(gin[j] + sr[j] * ghn[j])
    for j in range(n):
        h[j] = sn[j] + sz[j] * (h_prev[j] - sn[j])


@njit(**_STEP)
def gru_step(gi, gh, h_prev, act, h):  # pragma: no cover - compiled
    """One GRU step from its products: r, z, n into ``act`` (B, 3H), h' into ``h`` (B, H)."""
    for b in range(h.shape[0]):
        _gru_gates_row(gi[b], gh[b], h_prev[b], act[b], h[b])


@njit(**_STEP)
def _gru_back_row(act, gh_n, h_prev, grad_h_out, carry, grad_gh, grad_gi, z_carry, one):
    # pragma: no cover - compiled
    n = h_prev.shape[0]
    sr, sz, sn = act[:n], act[n : 2 * n], act[2 * n :]
    gg_r, gg_z, gg_n = grad_gh[:n], grad_gh[n : 2 * n], grad_gh[2 * n :]
    g_n, g = grad_gi[2 * n :], z_carry  # z_carry holds dL/dh' until the last loop
    for j in range(n):
        g[j] = grad_h_out[j] + carry[j]
    for j in range(n):
        g_n[j] = g[j] * (one - sz[j]) * (one - sn[j] * sn[j])
    for j in range(n):
        gg_r[j] = g_n[j] * gh_n[j] * sr[j] * (one - sr[j])
    for j in range(n):
        gg_z[j] = g[j] * (h_prev[j] - sn[j]) * sz[j] * (one - sz[j])
    for j in range(n):
        gg_n[j] = g_n[j] * sr[j]
    for j in range(n):
        z_carry[j] = g[j] * sz[j]
    for j in range(2 * n):
        grad_gi[j] = grad_gh[j]


@njit(**_STEP)
def gru_step_back(act, gh_n, h_prev, grad_h_out, carry, grad_gh, grad_gi, z_carry, one):
    # pragma: no cover - compiled
    """Backward of :func:`gru_step` at one step.

    ``grad_h_out`` is dL/dh' from outside, ``carry`` dL/dh' through the later steps; writes the
    gradients of ``gh`` and ``gi`` (B, 3H), and ``z_carry`` = dL/dh' * z, the part of dL/dh that
    does not pass through the recurrent product.
    """
    for b in range(h_prev.shape[0]):
        _gru_back_row(
            act[b], gh_n[b], h_prev[b], grad_h_out[b], carry[b], grad_gh[b], grad_gi[b],
            z_carry[b], one,
        )  # fmt: skip


# RRU (see :mod:`.rru`): the per-step work around its two products, one call each. Arrays are
# one step's (B, k) blocks.


@njit(**_STEP)
def _rru_norm_row(xp, jh, nrm, rms, mask, ds, eps):  # pragma: no cover - compiled
    m = xp.shape[0]
    for j in range(m):
        nrm[j] = xp[j] + jh[j]
    total = 0.0  # float64 whatever the dtype: a sum over hundreds of units
    for j in range(m):
        total += nrm[j] * nrm[j]
    rms[0] = 1.0 / math.sqrt(total / m + eps)
    r = rms[0]
    zero = r - r
    for j in range(m):
        nrm[j] *= r
    for j in range(m):
        ds[j] = nrm[j] * mask[j] if nrm[j] > zero else zero


@njit(**_STEP)
def rru_norm_step(xp, jh, nrm, rms, mask, ds, eps):  # pragma: no cover - compiled
    """v = xp + jh; N = v / sqrt(mean(v^2) + eps) into ``nrm`` (which may be ``xp``), the
    factor into ``rms`` (B, 1); ReLU(N) times ``mask`` into ``ds``."""
    for b in range(xp.shape[0]):
        _rru_norm_row(xp[b], jh[b], nrm[b], rms[b], mask[b], ds[b], eps)


@njit(**_STEP)
def rru_state_step(h, decay, rezero, c, c_out, h_out):  # pragma: no cover - compiled
    """h' = decay h + rezero c into ``h_out``; ``c`` copied into ``c_out``."""
    for b in range(h.shape[0]):
        hb, cb, cob, hob = h[b], c[b], c_out[b], h_out[b]
        for j in range(hb.shape[0]):
            cob[j] = cb[j]
        for j in range(hb.shape[0]):
            hob[j] = hb[j] * decay[j] + rezero[j] * cb[j]


@njit(**_STEP)
def rru_norm_back(m, grad_ds, nrm, mask, rms, grad_pre):  # pragma: no cover - compiled
    """g = (m + grad_ds) mask where N > 0 (else 0); through the RMS norm, (g - N mean(g N)) r
    into ``grad_pre``."""
    width = nrm.shape[1]
    for b in range(nrm.shape[0]):
        mb, gdb, kb, nb, gpb = m[b], grad_ds[b], mask[b], nrm[b], grad_pre[b]
        zero = rms[b, 0] - rms[b, 0]
        for j in range(width):
            gpb[j] = (mb[j] + gdb[j]) * kb[j] if nb[j] > zero else zero
        total = 0.0
        for j in range(width):
            total += gpb[j] * nb[j]
        proj = total / width
        r = rms[b, 0]
        for j in range(width):
            gpb[j] = (gpb[j] - nb[j] * proj) * r


# The LSTM step of the Mogrifier (see :mod:`.mogrifier`) after its product: one call forward,
# one backward, on one step's (B, k) blocks; ``pre`` and ``acts`` in torch's gate order.


@njit(**_STEP)
def _lstm_cell_row(pre, st, c_prev, ct, tct, ht):  # pragma: no cover - compiled
    n = ht.shape[0]
    pi, pf, pg, po = pre[:n], pre[n : 2 * n], pre[2 * n : 3 * n], pre[3 * n :]
    si, sf, sg, so = st[:n], st[n : 2 * n], st[2 * n : 3 * n], st[3 * n :]
    for j in range(n):
        si[j] = sigmoid(pi[j])
    for j in range(n):
        sf[j] = sigmoid(pf[j])
    for j in range(n):
        sg[j] = tanh(pg[j])
    for j in range(n):
        so[j] = sigmoid(po[j])
    for j in range(n):
        ct[j] = sf[j] * c_prev[j] + si[j] * sg[j]
    for j in range(n):
        tct[j] = tanh(ct[j])
    for j in range(n):
        ht[j] = so[j] * tct[j]


@njit(**_STEP)
def lstm_cell_step(pre, acts, c_prev, cs, tcs, hs):  # pragma: no cover - compiled
    """i, f, g, o from the pre-activations ``pre`` (B, 4n) into ``acts``; c', tanh c', h'."""
    for b in range(pre.shape[0]):
        _lstm_cell_row(pre[b], acts[b], c_prev[b], cs[b], tcs[b], hs[b])


@njit(**_STEP)
def _lstm_cell_back_row(st, tct, c_prev, grad_h, grad_c, grad_pre, one):  # pragma: no cover
    n = tct.shape[0]
    si, sf, sg, so = st[:n], st[n : 2 * n], st[2 * n : 3 * n], st[3 * n :]
    gi_t, gf_t = grad_pre[:n], grad_pre[n : 2 * n]
    gg_t, go_t = grad_pre[2 * n : 3 * n], grad_pre[3 * n :]
    for j in range(n):
        grad_c[j] += grad_h[j] * so[j] * (one - tct[j] * tct[j])
    for j in range(n):
        gi_t[j] = grad_c[j] * sg[j] * si[j] * (one - si[j])
    for j in range(n):
        gf_t[j] = grad_c[j] * c_prev[j] * sf[j] * (one - sf[j])
    for j in range(n):
        gg_t[j] = grad_c[j] * si[j] * (one - sg[j] * sg[j])
    for j in range(n):
        go_t[j] = grad_h[j] * tct[j] * so[j] * (one - so[j])
    for j in range(n):
        grad_c[j] *= sf[j]


@njit(**_STEP)
def lstm_cell_step_back(acts, tcs, c_prev, grad_h, grad_c, grad_pre, one):  # pragma: no cover
    """Backward of :func:`lstm_cell_step`: dL/dpre into ``grad_pre``; ``grad_c`` (dL/dc') is
    updated in place to dL/dc."""
    for b in range(acts.shape[0]):
        _lstm_cell_back_row(acts[b], tcs[b], c_prev[b], grad_h[b], grad_c[b], grad_pre[b], one)


# The mutual gating rounds of the Mogrifier (see :mod:`.mogrifier`), one step per call, with
# their small products (numpy's dot: BLAS through scipy) inside: one call instead of four
# torch ops per round. Round k's matrix is low-rank, ``up[k] @ down[k]``, and is applied as two
# thin products (``rank (m + n)`` multiply-adds per row instead of ``m n``; half the time at
# the default rank, measured). ``gates2[k]`` and ``outs[k]`` are (T, B, size) windows of
# 2 sigmoid(.) and the round's output; ``thin[k]`` and ``grad_thin[k]`` (T, B, rank) keep the
# middle of each round's two products, forward and backward, for the factors' gradients.


@njit(**_STEP)
def _mogrify_gate(g, src, out, two):  # pragma: no cover - compiled
    for b in range(g.shape[0]):
        gb, sb, ob = g[b], src[b], out[b]
        for j in range(gb.shape[0]):
            gb[j] = two * sigmoid(gb[j])
        for j in range(gb.shape[0]):
            ob[j] = sb[j] * gb[j]


@njit(**_STEP)
def mogrify_step(
    t, xs, h, downs_t, ups_t, thin, gates2, outs, xh, one
):  # pragma: no cover - compiled
    """The rounds of step ``t``: from x = xs[t] and the state ``h`` (B, n), round k gates x by
    h (k even) or h by x (k odd); the last x and h go into ``xh[t]`` (B, m + n).
    ``downs_t[k]`` and ``ups_t[k]`` are round k's factors transposed; ``thin[k][t]`` (B, rank)
    receives the round's first thin product (the gating vector times ``down^T``)."""
    two = one + one
    x = xs[t]
    hh = h
    for k in range(len(downs_t)):
        g, o, tmp_r = gates2[k][t], outs[k][t], thin[k][t]
        if k % 2 == 0:
            np.dot(hh, downs_t[k], tmp_r)
            np.dot(tmp_r, ups_t[k], g)
            _mogrify_gate(g, x, o, two)
            x = o
        else:
            np.dot(x, downs_t[k], tmp_r)
            np.dot(tmp_r, ups_t[k], g)
            _mogrify_gate(g, hh, o, two)
            hh = o
    m = x.shape[1]
    row = xh[t]
    for b in range(x.shape[0]):
        rb, xb, hb = row[b], x[b], hh[b]
        for j in range(m):
            rb[j] = xb[j]
        for j in range(hb.shape[0]):
            rb[m + j] = hb[j]


@njit(**_STEP)
def _mogrify_gate_back(grad, before, g, grad_pre, half, one):  # pragma: no cover - compiled
    # out = before * g with g = 2 sigmoid(z): dout/dz = before * g (1 - g / 2).
    for b in range(g.shape[0]):
        gr, bf, gb, gp = grad[b], before[b], g[b], grad_pre[b]
        for j in range(gb.shape[0]):
            gp[j] = gr[j] * bf[j] * gb[j] * (one - half * gb[j])
        for j in range(gb.shape[0]):
            gr[j] *= gb[j]


@njit(**_STEP)
def mogrify_step_back(
    t,
    grad_xh,
    grad_xs,
    grad_h,
    xs,
    h_prev,
    ups,
    downs,
    gates2,
    outs,
    grad_pre,
    grad_thin,
    tmp_x,
    tmp_h,
    one,
):  # pragma: no cover - compiled
    """Backward of :func:`mogrify_step`: ``grad_xh`` (B, m + n) is dL/dxh[t]; dL/dxs[t] goes
    into ``grad_xs[t]``, dL/dh (of the state the step read) into ``grad_h``, each round's
    dL/dz into ``grad_pre[k][t]`` and dL/dz up into ``grad_thin[k][t]`` (B, rank). ``tmp_x``
    (B, m) and ``tmp_h`` (B, n) are scratch."""
    half = one / (one + one)
    grad_x = grad_xs[t]
    m = grad_x.shape[1]
    for b in range(grad_x.shape[0]):
        src, gx, gh = grad_xh[b], grad_x[b], grad_h[b]
        for j in range(m):
            gx[j] = src[j]
        for j in range(gh.shape[0]):
            gh[j] = src[m + j]
    for k in range(len(ups) - 1, -1, -1):
        g, gp, tmp_r = gates2[k][t], grad_pre[k][t], grad_thin[k][t]
        if k >= 2:
            before = outs[k - 2][t]
        elif k == 0:
            before = xs[t]
        else:
            before = h_prev
        if k % 2 == 0:
            _mogrify_gate_back(grad_x, before, g, gp, half, one)
            np.dot(gp, ups[k], tmp_r)
            np.dot(tmp_r, downs[k], tmp_h)
            grad_h += tmp_h
        else:
            _mogrify_gate_back(grad_h, before, g, gp, half, one)
            np.dot(gp, ups[k], tmp_r)
            np.dot(tmp_r, downs[k], tmp_x)
            grad_x += tmp_x


# Dropout masks (see :mod:`.dropout_mask`): element i of a window is kept, and scaled, when the
# top 24 bits of lowbias32(i * golden ^ seed) fall below ``threshold``. uint32 arithmetic wraps,
# as the hash needs.
_GOLDEN = np.uint32(0x9E3779B1)
_LOWBIAS_1 = np.uint32(0x7FEB352D)
_LOWBIAS_2 = np.uint32(0x846CA68B)
_U16, _U15, _U8 = np.uint32(16), np.uint32(15), np.uint32(8)


@njit(**_STEP)
def _kept(i, key, bound):  # pragma: no cover - compiled
    """Whether element ``i`` is kept: lowbias32(i * golden ^ key)'s top 24 bits < ``bound``."""
    x = np.uint32(np.uint32(i) * _GOLDEN) ^ key
    x ^= x >> _U16
    x = np.uint32(x * _LOWBIAS_1)
    x ^= x >> _U15
    x = np.uint32(x * _LOWBIAS_2)
    x ^= x >> _U16
    return (x >> _U8) < bound


@njit(**_STEP)
def dropout_mask(flat, seed, threshold, scale):  # pragma: no cover - compiled
    """``flat[i] = scale`` where element i is kept, else 0, for the 1-D window ``flat``."""
    key, bound = np.uint32(seed), np.uint32(threshold)
    zero = scale - scale
    for i in range(flat.shape[0]):
        flat[i] = scale if _kept(i, key, bound) else zero


@njit(**_STEP)
def dropout_apply(src, dst, seed, threshold, scale):  # pragma: no cover - compiled
    """``dst[i] = src[i] * scale`` where element i is kept (the mask of :func:`dropout_mask`
    for ``seed``), else 0, for 1-D arrays: dropout forward, and its backward from the same seed."""
    key, bound = np.uint32(seed), np.uint32(threshold)
    zero = scale - scale
    for i in range(src.shape[0]):
        dst[i] = src[i] * scale if _kept(i, key, bound) else zero
