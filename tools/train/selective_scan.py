"""Selective scan (Mamba-1 / Vim mixer recurrence) for training: exact and
differentiable, three implementations of the same function.

    y = selective_scan(x, dt, dt_bias, A, Bm, Cm, D, reverse=False)

Inputs are token-major:
    x  (B, L, E)   the conv+SiLU output              (fp32 / bf16 / fp16)
    dt (B, L, E)   dt_proj output BEFORE its bias
    dt_bias (E), A (E, N) = -exp(A_log), Bm (B, L, N), Cm (B, L, N), D (E)
Semantics (tests/reference/vim_ref.py, BiMambaMixer._direction):
    delta = softplus(dt + dt_bias), softplus(v) = v if v > 20 else log1p(exp(v))
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * Bm_t * x_t      (h = 0 before the first step)
    y_t   = sum_n Cm_t[n] h_t[:, n] + D * x_t
With reverse=True the recurrence runs from t = L-1 down to 0 (equal to
flip -> scan -> flip, Vim's backward direction). y has x's dtype; the math is
fp32 (float64 when an input is float64, ref/chunked only). The SiLU(z) gate is
not part of it.

Implementations:
  - selective_scan_ref: plain sequential torch loop (CPU fallback, reference);
  - selective_scan_chunked: pure torch, sequential over chunks, log-depth scan
    in log space inside a chunk (only exp of non-positive numbers), each chunk
    under activation checkpointing; exact, differentiable by autograd, usable
    on any device (the trainer's fallback if the Triton self-check fails);
  - the Triton kernels (forward + backward, _SelectiveScanFn): one program per
    (batch, block of channels), sequential over tokens with the (BLOCK_E, N)
    state in registers; the forward saves the state every CHUNK_T steps, the
    backward walks the chunks in reverse, recomputes a chunk's states into a
    per-program scratch buffer and runs the adjoint recurrence.

selective_scan() picks Triton for CUDA tensors (and for CPU tensors when
TRITON_INTERPRET=1 is set), else the chunked version on CUDA without Triton,
else the ref; backend= forces one of 'triton', 'chunked', 'ref'.
"""
import math
import os

import torch
from torch.utils.checkpoint import checkpoint

try:
    import triton
    import triton.language as tl
    HAVE_TRITON = True
except Exception:  # pragma: no cover - depends on the install
    triton = None
    tl = None
    HAVE_TRITON = False

__all__ = ["selective_scan", "selective_scan_ref", "selective_scan_chunked",
           "softplus_thr20", "HAVE_TRITON"]

CHUNK_T = 16          # tokens between saved states (Triton backward)


def softplus_thr20(v):
    """v if v > 20 else log1p(exp(v)) (the reference's threshold)."""
    return torch.where(v > 20.0, v, torch.log1p(torch.exp(torch.clamp(v, max=20.0))))


def _compute_dtype(*ts):
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _check_shapes(x, dt, dt_bias, A, Bm, Cm, D):
    if x.dim() != 3:
        raise ValueError(f"x must be (B, L, E), got {tuple(x.shape)}")
    Bsz, L, E = x.shape
    if A.dim() != 2 or A.shape[0] != E:
        raise ValueError(f"A must be (E, N) with E={E}, got {tuple(A.shape)}")
    N = A.shape[1]
    for name, t, shp in (("dt", dt, (Bsz, L, E)), ("dt_bias", dt_bias, (E,)),
                         ("Bm", Bm, (Bsz, L, N)), ("Cm", Cm, (Bsz, L, N)), ("D", D, (E,))):
        if tuple(t.shape) != shp:
            raise ValueError(f"{name} must be {shp}, got {tuple(t.shape)}")
    return Bsz, L, E, N


# --------------------------------------------------------------------------
# Reference: plain sequential loop
# --------------------------------------------------------------------------

def selective_scan_ref(x, dt, dt_bias, A, Bm, Cm, D, reverse=False):
    """Sequential torch loop over the tokens; differentiable by autograd."""
    _check_shapes(x, dt, dt_bias, A, Bm, Cm, D)
    cdt = _compute_dtype(x, dt, dt_bias, A, Bm, Cm, D)
    xs, dts, Bs, Cs = (t.to(cdt) for t in (x, dt, Bm, Cm))
    if reverse:
        xs, dts, Bs, Cs = (t.flip(1) for t in (xs, dts, Bs, Cs))
    Af, Df = A.to(cdt), D.to(cdt)
    delta = softplus_thr20(dts + dt_bias.to(cdt))
    Bsz, L, E = xs.shape
    h = torch.zeros(Bsz, E, A.shape[1], dtype=cdt, device=x.device)
    ys = []
    for t in range(L):
        d_t = delta[:, t]                                           # (B, E)
        h = torch.exp(d_t[:, :, None] * Af[None]) * h \
            + (d_t * xs[:, t])[:, :, None] * Bs[:, t, None, :]
        ys.append((h * Cs[:, t, None, :]).sum(-1) + Df[None] * xs[:, t])
    y = torch.stack(ys, dim=1)
    if reverse:
        y = y.flip(1)
    return y.to(x.dtype)


# --------------------------------------------------------------------------
# Chunked pure-torch version
# --------------------------------------------------------------------------

def _chunk_scan(h0, delta, x, Bm, Cm, A, D):
    """One chunk of T tokens. h0 (B, E, N); delta, x (B, T, E); Bm, Cm (B, T, N).
    Returns y (B, T, E) and the last state (B, E, N)."""
    T = x.shape[1]
    s = delta[..., None] * A                                     # log decays a_t <= 0
    v = (delta * x)[..., None] * Bm[:, :, None, :]              # inputs u_t
    # Hillis-Steele in log space: after the step with offset k,
    #   s_t = sum_{r in (t-2k, t]} a_r,   v_t = sum_{j in (t-2k, t]} exp(sum_{r in (j, t]} a_r) u_j
    k = 1
    while k < T:
        v = torch.cat([v[:, :k], v[:, k:] + torch.exp(s[:, k:]) * v[:, :-k]], dim=1)
        s = torch.cat([s[:, :k], s[:, k:] + s[:, :-k]], dim=1)
        k *= 2
    h = torch.exp(s) * h0[:, None] + v                           # (B, T, E, N)
    y = (h * Cm[:, :, None, :]).sum(-1) + D * x
    return y, h[:, -1]


def _pick_chunk(Bsz, E, N, L):
    budget = 1 << 25                    # elements of one (B, T, E, N) chunk tensor
    T = 64
    while T > 4 and Bsz * T * E * N > budget:
        T //= 2
    while T > 1 and T // 2 >= L:
        T //= 2
    return T


def selective_scan_chunked(x, dt, dt_bias, A, Bm, Cm, D, reverse=False, chunk=None):
    """Pure torch, exact: sequential over chunks of `chunk` tokens, a log-depth
    scan in log space inside each chunk; every chunk is recomputed in the
    backward (activation checkpointing), so memory is one chunk's worth plus
    the (B, E, N) boundary states."""
    Bsz, L, E, N = _check_shapes(x, dt, dt_bias, A, Bm, Cm, D)
    cdt = _compute_dtype(x, dt, dt_bias, A, Bm, Cm, D)
    xs, dts, Bs, Cs = (t.to(cdt) for t in (x, dt, Bm, Cm))
    if reverse:
        xs, dts, Bs, Cs = (t.flip(1) for t in (xs, dts, Bs, Cs))
    Af, Df = A.to(cdt), D.to(cdt)
    delta = softplus_thr20(dts + dt_bias.to(cdt))
    T = chunk or _pick_chunk(Bsz, E, N, L)
    use_ckpt = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, dt, dt_bias, A, Bm, Cm, D))
    h = torch.zeros(Bsz, E, N, dtype=cdt, device=x.device)
    ys = []
    for c0 in range(0, L, T):
        args = (h, delta[:, c0:c0 + T], xs[:, c0:c0 + T], Bs[:, c0:c0 + T],
                Cs[:, c0:c0 + T], Af, Df)
        if use_ckpt:
            y_c, h = checkpoint(_chunk_scan, *args, use_reentrant=False)
        else:
            y_c, h = _chunk_scan(*args)
        ys.append(y_c)
    y = torch.cat(ys, dim=1)
    if reverse:
        y = y.flip(1)
    return y.to(x.dtype)


# --------------------------------------------------------------------------
# Triton kernels
# --------------------------------------------------------------------------

if HAVE_TRITON:

    @triton.jit
    def _softplus20(v):
        # v if v > 20 else log1p(exp(v)) = max(v, 0) + log1p(exp(-|v|)), with an
        # accurate log1p(u) = log(1+u) * u / ((1+u) - 1)
        u = tl.exp(-tl.abs(v))
        w = 1.0 + u
        den = tl.where(w == 1.0, 1.0, w - 1.0)
        lp = tl.where(w == 1.0, u, tl.log(w) * (u / den))
        return tl.where(v > 20.0, v, tl.maximum(v, 0.0) + lp)

    @triton.jit
    def _load_step(xb, dtb, Bb, Cb, s, L, E, N, offs_e, offs_n, me, mn,
                   REVERSE: tl.constexpr):
        # the inputs of scan step s (token L-1-s when REVERSE), zeros when s is
        # outside [0, L)
        if REVERSE:
            t = L - 1 - s
        else:
            t = s
        se = offs_e * 0 + s
        sn = offs_n * 0 + s
        mev = me & (se >= 0) & (se < L)
        mnv = mn & (sn >= 0) & (sn < L)
        xv = tl.load(xb + t * E + offs_e, mask=mev, other=0.0).to(tl.float32)
        dtv = tl.load(dtb + t * E + offs_e, mask=mev, other=0.0).to(tl.float32)
        Bv = tl.load(Bb + t * N + offs_n, mask=mnv, other=0.0).to(tl.float32)
        Cv = tl.load(Cb + t * N + offs_n, mask=mnv, other=0.0).to(tl.float32)
        return xv, dtv, Bv, Cv

    @triton.jit
    def _scan_fwd_kernel(x_ptr, dt_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr,
                         y_ptr, hs_ptr, L, E, N, nchunks,
                         REVERSE: tl.constexpr, T: tl.constexpr,
                         BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        pid_e = tl.program_id(1)
        offs_e = pid_e * BLOCK_E + tl.arange(0, BLOCK_E)
        offs_n = tl.arange(0, BLOCK_N)
        me = offs_e < E
        mn = offs_n < N
        men = me[:, None] & mn[None, :]
        A = tl.load(A_ptr + offs_e[:, None] * N + offs_n[None, :], mask=men, other=0.0).to(tl.float32)
        bias = tl.load(bias_ptr + offs_e, mask=me, other=0.0).to(tl.float32)
        Dv = tl.load(D_ptr + offs_e, mask=me, other=0.0).to(tl.float32)
        xb = x_ptr + pid_b * L * E
        dtb = dt_ptr + pid_b * L * E
        yb = y_ptr + pid_b * L * E
        Bb = B_ptr + pid_b * L * N
        Cb = C_ptr + pid_b * L * N
        hsb = hs_ptr + pid_b * nchunks * E * N
        hs_off = offs_e[:, None] * N + offs_n[None, :]
        h = tl.zeros((BLOCK_E, BLOCK_N), dtype=tl.float32)
        # software pipelining: the next step's inputs are loaded before this
        # step's arithmetic, so their latency overlaps it
        xv, dtv, Bv, Cv = _load_step(xb, dtb, Bb, Cb, 0, L, E, N, offs_e, offs_n, me, mn, REVERSE)
        for c in range(nchunks):
            tl.store(hsb + c * E * N + hs_off, h, mask=men)
            for i in range(T):
                s = c * T + i
                xn, dtn, Bn, Cn = _load_step(xb, dtb, Bb, Cb, s + 1, L, E, N, offs_e, offs_n,
                                             me, mn, REVERSE)
                if REVERSE:
                    t = L - 1 - s
                else:
                    t = s
                mev = me & ((offs_e * 0 + s) < L)
                delta = tl.where(mev, _softplus20(dtv + bias), 0.0)
                dA = tl.exp(delta[:, None] * A)
                h = dA * h + (delta * xv)[:, None] * Bv[None, :]
                y = tl.sum(h * Cv[None, :], axis=1) + Dv * xv
                tl.store(yb + t * E + offs_e, y.to(y_ptr.dtype.element_ty), mask=mev)
                xv, dtv, Bv, Cv = xn, dtn, Bn, Cn

    @triton.jit
    def _scan_bwd_kernel(x_ptr, dt_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr,
                         gy_ptr, hs_ptr, scr_ptr,
                         gx_ptr, gdt_ptr, gA_ptr, gD_ptr, gB_ptr, gC_ptr,
                         L, E, N, nchunks, nEb,
                         REVERSE: tl.constexpr, T: tl.constexpr,
                         BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        pid_e = tl.program_id(1)
        offs_e = pid_e * BLOCK_E + tl.arange(0, BLOCK_E)
        offs_n = tl.arange(0, BLOCK_N)
        me = offs_e < E
        mn = offs_n < N
        men = me[:, None] & mn[None, :]
        A = tl.load(A_ptr + offs_e[:, None] * N + offs_n[None, :], mask=men, other=0.0).to(tl.float32)
        bias = tl.load(bias_ptr + offs_e, mask=me, other=0.0).to(tl.float32)
        Dv = tl.load(D_ptr + offs_e, mask=me, other=0.0).to(tl.float32)
        xb = x_ptr + pid_b * L * E
        dtb = dt_ptr + pid_b * L * E
        gyb = gy_ptr + pid_b * L * E
        gxb = gx_ptr + pid_b * L * E
        gdtb = gdt_ptr + pid_b * L * E
        Bb = B_ptr + pid_b * L * N
        Cb = C_ptr + pid_b * L * N
        gBb = gB_ptr + (pid_b * nEb + pid_e) * L * N
        gCb = gC_ptr + (pid_b * nEb + pid_e) * L * N
        hsb = hs_ptr + pid_b * nchunks * E * N
        hs_off = offs_e[:, None] * N + offs_n[None, :]
        scb = scr_ptr + (pid_b * nEb + pid_e) * (T * BLOCK_E * BLOCK_N)
        sc_off = tl.arange(0, BLOCK_E)[:, None] * BLOCK_N + offs_n[None, :]
        gcarry = tl.zeros((BLOCK_E, BLOCK_N), dtype=tl.float32)   # exp(delta_{t+1} A) g_h_{t+1}
        gA_acc = tl.zeros((BLOCK_E, BLOCK_N), dtype=tl.float32)
        gD_acc = tl.zeros((BLOCK_E,), dtype=tl.float32)
        for cc in range(nchunks):
            c = nchunks - 1 - cc
            # 1. recompute the chunk's states: scratch[i] = state before step i
            h = tl.load(hsb + c * E * N + hs_off, mask=men, other=0.0)
            xv, dtv, Bv, Cv = _load_step(xb, dtb, Bb, Cb, c * T, L, E, N, offs_e, offs_n,
                                         me, mn, REVERSE)
            for i in range(T):
                s = c * T + i
                xn, dtn, Bn, Cn = _load_step(xb, dtb, Bb, Cb, s + 1, L, E, N, offs_e, offs_n,
                                             me, mn, REVERSE)
                mev = me & ((offs_e * 0 + s) < L)
                delta = tl.where(mev, _softplus20(dtv + bias), 0.0)
                tl.store(scb + i * (BLOCK_E * BLOCK_N) + sc_off, h)
                h = tl.exp(delta[:, None] * A) * h + (delta * xv)[:, None] * Bv[None, :]
                xv, dtv, Bv, Cv = xn, dtn, Bn, Cn
            tl.debug_barrier()
            # 2. adjoint recurrence over the chunk, last step first (inputs of
            #    step i-1 prefetched during step i)
            s = c * T + T - 1
            xv, dtv, Bv, Cv = _load_step(xb, dtb, Bb, Cb, s, L, E, N, offs_e, offs_n,
                                         me, mn, REVERSE)
            if REVERSE:
                t = L - 1 - s
            else:
                t = s
            gyv = tl.load(gyb + t * E + offs_e, mask=me & ((offs_e * 0 + s) < L),
                          other=0.0).to(tl.float32)
            hp = tl.load(scb + (T - 1) * (BLOCK_E * BLOCK_N) + sc_off)
            for ii in range(T):
                i = T - 1 - ii
                s = c * T + i
                # prefetch step i-1 (within this chunk)
                xn, dtn, Bn, Cn = _load_step(xb, dtb, Bb, Cb, s - 1, L, E, N, offs_e, offs_n,
                                             me, mn, REVERSE)
                if REVERSE:
                    tn = L - s
                else:
                    tn = s - 1
                sn = offs_e * 0 + (s - 1)
                gyn = tl.load(gyb + tn * E + offs_e, mask=me & (sn >= 0) & (sn < L),
                              other=0.0).to(tl.float32)
                inb = (sc_off * 0 + i) > 0
                hpn = tl.load(scb + (i - 1) * (BLOCK_E * BLOCK_N) + sc_off, mask=inb, other=0.0)
                if REVERSE:
                    t = L - 1 - s
                else:
                    t = s
                mev = me & ((offs_e * 0 + s) < L)
                mnv = mn & ((offs_n * 0 + s) < L)
                v = dtv + bias
                delta = tl.where(mev, _softplus20(v), 0.0)
                dA = tl.exp(delta[:, None] * A)
                dx = delta * xv
                hc = dA * hp + dx[:, None] * Bv[None, :]
                gh = Cv[None, :] * gyv[:, None] + gcarry
                ghB = tl.sum(gh * Bv[None, :], axis=1)
                gxv = ghB * delta + Dv * gyv
                gdelta = tl.sum(gh * (A * dA * hp), axis=1) + ghB * xv
                sig = 1.0 / (1.0 + tl.exp(-v))
                gdtv = tl.where(v > 20.0, gdelta, gdelta * sig)
                gA_acc += gh * hp * (delta[:, None] * dA)
                gD_acc += gyv * xv
                gBv = tl.sum(gh * dx[:, None], axis=0)
                gCv = tl.sum(hc * gyv[:, None], axis=0)
                tl.store(gxb + t * E + offs_e, gxv.to(gx_ptr.dtype.element_ty), mask=mev)
                tl.store(gdtb + t * E + offs_e, gdtv.to(gdt_ptr.dtype.element_ty), mask=mev)
                tl.store(gBb + t * N + offs_n, gBv, mask=mnv)
                tl.store(gCb + t * N + offs_n, gCv, mask=mnv)
                gcarry = dA * gh
                xv, dtv, Bv, Cv, gyv, hp = xn, dtn, Bn, Cn, gyn, hpn
            tl.debug_barrier()
        tl.store(gA_ptr + pid_b * E * N + hs_off, gA_acc, mask=men)
        tl.store(gD_ptr + pid_b * E + offs_e, gD_acc, mask=me)


def _triton_config(Bsz, E, N, block_e=None):
    BLOCK_N = max(2, triton.next_power_of_2(N))
    if block_e is None:
        block_e = 32
        # enough programs to fill an H100 (132 SMs) at small batch / long sequence
        while block_e > 4 and Bsz * triton.cdiv(E, block_e) < 264:
            block_e //= 2
    block_e = min(block_e, max(1, triton.next_power_of_2(E)))
    nw = max(1, min(8, block_e * BLOCK_N // 128))
    return block_e, BLOCK_N, nw


def _prep(t):
    return t.contiguous()


class _SelectiveScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, dt_bias, A, Bm, Cm, D, reverse, block_e):
        Bsz, L, E, N = _check_shapes(x, dt, dt_bias, A, Bm, Cm, D)
        x, dt, dt_bias, A, Bm, Cm, D = (_prep(t) for t in (x, dt, dt_bias, A, Bm, Cm, D))
        BLOCK_E, BLOCK_N, nw = _triton_config(Bsz, E, N, block_e)
        nEb = triton.cdiv(E, BLOCK_E)
        nchunks = triton.cdiv(L, CHUNK_T)
        y = torch.empty_like(x)
        hs = torch.empty(Bsz, nchunks, E, N, dtype=torch.float32, device=x.device)
        if L > 0:
            _scan_fwd_kernel[(Bsz, nEb)](
                x, dt, dt_bias, A, Bm, Cm, D, y, hs, L, E, N, nchunks,
                REVERSE=bool(reverse), T=CHUNK_T, BLOCK_E=BLOCK_E, BLOCK_N=BLOCK_N,
                num_warps=nw)
        ctx.save_for_backward(x, dt, dt_bias, A, Bm, Cm, D, hs)
        ctx.cfg = (bool(reverse), BLOCK_E, BLOCK_N, nw, nEb, nchunks)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, dt, dt_bias, A, Bm, Cm, D, hs = ctx.saved_tensors
        reverse, BLOCK_E, BLOCK_N, nw, nEb, nchunks = ctx.cfg
        Bsz, L, E = x.shape
        N = A.shape[1]
        gy = gy.contiguous()
        dev = x.device
        f32 = torch.float32
        gx = torch.empty_like(x)
        gdt = torch.empty(Bsz, L, E, dtype=f32, device=dev)
        gA = torch.empty(Bsz, E, N, dtype=f32, device=dev)
        gD = torch.empty(Bsz, E, dtype=f32, device=dev)
        gB = torch.empty(Bsz, nEb, L, N, dtype=f32, device=dev)
        gC = torch.empty(Bsz, nEb, L, N, dtype=f32, device=dev)
        scr = torch.empty(Bsz * nEb * CHUNK_T * BLOCK_E * BLOCK_N, dtype=f32, device=dev)
        if L > 0:
            _scan_bwd_kernel[(Bsz, nEb)](
                x, dt, dt_bias, A, Bm, Cm, D, gy, hs, scr,
                gx, gdt, gA, gD, gB, gC, L, E, N, nchunks, nEb,
                REVERSE=reverse, T=CHUNK_T, BLOCK_E=BLOCK_E, BLOCK_N=BLOCK_N,
                num_warps=nw)
        else:
            for g in (gx, gdt, gA, gD, gB, gC):
                g.zero_()
        gbias = gdt.sum(dim=(0, 1))
        return (gx, gdt.to(dt.dtype), gbias.to(dt_bias.dtype), gA.sum(0).to(A.dtype),
                gB.sum(1).to(Bm.dtype), gC.sum(1).to(Cm.dtype), gD.sum(0).to(D.dtype),
                None, None)


def _interpret():
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def selective_scan(x, dt, dt_bias, A, Bm, Cm, D, reverse=False, backend="auto", block_e=None):
    """The selective scan (see the module docstring). backend: 'auto' (Triton on
    CUDA or with TRITON_INTERPRET=1, else chunked on CUDA, else ref),
    'triton', 'chunked', 'ref'."""
    if backend == "auto":
        if HAVE_TRITON and (x.is_cuda or _interpret()):
            backend = "triton"
        elif x.is_cuda:
            backend = "chunked"
        else:
            backend = "ref"
    if backend == "triton":
        if not HAVE_TRITON:
            raise RuntimeError("triton is not installed")
        return _SelectiveScanFn.apply(x, dt, dt_bias, A, Bm, Cm, D, bool(reverse), block_e)
    if backend == "chunked":
        return selective_scan_chunked(x, dt, dt_bias, A, Bm, Cm, D, reverse=reverse)
    if backend == "ref":
        return selective_scan_ref(x, dt, dt_bias, A, Bm, Cm, D, reverse=reverse)
    raise ValueError(f"unknown backend {backend!r}")
