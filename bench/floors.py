#!/usr/bin/env python3
"""Per-kernel floors of one Vim layer as the CUDA backend runs it, from bytes moved and
special-function (MUFU) operations over measured ceilings.

  bench/floors.py --variant vim_ti --res 224 --pass-images 128 [--chunks 1]
                  [--dram-tbs 4.3] [--mufu-tops 4.18] [--measured-us rmsnorm=11.2,scan=177.7,...]

Counts what each kernel of the layer must read and write once (activations fp16, residual
stream and x_proj output fp32, weights once per pass), and for the scan the exponentials:
one per token, channel, state and direction plus two for softplus (exp and lg2) and one for
the gate's SiLU(z) (tanh; --silu-ops 2 counts exp and rcp, as fp32 and builds before 737f6c7
ran it) per token, channel and direction; the conv's two SiLUs per token and channel likewise.
--gate-in-conv counts the earlier split, where the conv wrote SiLU(z) and the scan read it.
--sum-directions counts the scan that sums the two directions (the rule for d_inner >= 768,
Vim-S and Vim-B): the backward pass reads the forward outputs it adds to, and out_proj reads
E columns with its D x E weight instead of 2E with the weight stacked twice.
A kernel's floor is the larger of bytes / DRAM bandwidth and MUFU ops / MUFU rate. With the
scan split into P chunks the summary pass runs the recurrence again over P-1 of them. Prints
per pass, per image and the img/s ceiling of this unfused design, and the ceiling when two
passes run side by side and their memory-bound and MUFU-bound kernels overlap perfectly.
Ceilings default to the H200 (4.3 TB/s device copy measured here; 132 SMs x 16 MUFU
ops/clk x 1.98 GHz).
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from vimtools.vimconfig import TEST_VARIANTS, VARIANTS, make_config  # noqa: E402


def layer_kernels(cfg, chunks, gate_in_conv=False, silu_ops=1, sum_directions=False):
    """(name, bytes per token, weight bytes per pass, MUFU ops per token) of one layer."""
    D, E, N = cfg["embed_dim"], cfg["d_inner"], cfg["d_state"]
    # x_proj output row (fp32): dt_low padded to 4, B, C; the row rounded up to 8 floats
    ldd = 8 * math.ceil((4 * math.ceil(cfg["dt_rank"] / 4) + 2 * N) / 8)
    a, f = 2, 4                                  # activation (fp16) and fp32 bytes
    summary = (chunks - 1) / chunks if chunks > 1 else 0.0
    # conv: x in, both directions out (and with the gate: z in, SiLU(z) out)
    conv = 3 * E * a + (2 * E * a if gate_in_conv else 0)
    gate_mufu = 0 if gate_in_conv else silu_ops
    conv_mufu = (2 + (1 if gate_in_conv else 0)) * E * silu_ops
    # out_proj's input columns: both directions, or their sum (written by the backward pass
    # over the forward outputs, which it reads)
    k_out = E if sum_directions else 2 * E
    sum_read = E * a if sum_directions else 0
    return [
        ("rmsnorm", D * f + D * a, 0, 0),
        ("in_proj", D * a + 2 * E * a, 2 * E * D * a, 0),
        ("conv", conv, 0, conv_mufu),
        ("x_proj", 2 * E * a + 2 * ldd * f, 2 * ldd * E * a, 0),
        # u and z (or the gate) for both directions, the staged rows, y written in place
        # of u; the summary pass reads u and the rows again for its chunks
        ("scan", (2 * E * a + 2 * E * a + 2 * ldd * f + 2 * E * a + sum_read)
         + summary * (2 * E * a + 2 * ldd * f), 0,
         2 * E * (N + 2 + gate_mufu) + 2 * E * (N + 2) * summary),
        ("out_proj", k_out * a + 2 * D * f, D * k_out * a, 0),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS) + sorted(TEST_VARIANTS), default="vim_ti")
    ap.add_argument("--res", type=int, default=224, help="square input size")
    ap.add_argument("--pass-images", type=int, default=128, help="images in one pass through a layer")
    ap.add_argument("--chunks", type=int, default=1, help="scan chunks per chain (vim-bench scan_chunks)")
    ap.add_argument("--dram-tbs", type=float, default=4.3, help="DRAM bandwidth, TB/s (read + write)")
    ap.add_argument("--mufu-tops", type=float, default=4.18, help="MUFU rate, T ops/s")
    ap.add_argument("--gate-in-conv", action="store_true",
                    help="the conv writes SiLU(z) (VIM_CUDA_GATE_IN_CONV=1) instead of the scan computing it")
    ap.add_argument("--silu-ops", type=int, choices=(1, 2), default=1,
                    help="special-function operations per SiLU: 1 (tanh, 16-bit) or 2 (exp and rcp)")
    ap.add_argument("--sum-directions", action="store_true",
                    help="the scan sums the two directions for out_proj (the rule for d_inner >= 768)")
    ap.add_argument("--measured-us", default="",
                    help="kernel=us,... per pass (ncu durations) to print beside the floors")
    args = ap.parse_args()

    v = dict(VARIANTS.get(args.variant) or TEST_VARIANTS[args.variant])
    cfg = make_config(image_size=(args.res, args.res), **v)
    D, depth, L = cfg["embed_dim"], cfg["depth"], cfg["seq_len"]
    tokens = args.pass_images * L
    measured = dict((k, float(v)) for k, v in (x.split("=") for x in args.measured_us.split(",") if x))
    print(f"{args.variant} {args.res}x{args.res}: D {D}, E {cfg['d_inner']}, L {L} tokens; pass of "
          f"{args.pass_images} images = {tokens} tokens; scan chunks {args.chunks}; "
          f"{'directions summed; ' if args.sum_directions else ''}"
          f"DRAM {args.dram_tbs} TB/s, MUFU {args.mufu_tops} T ops/s")
    print(f"{'kernel':10s} {'MB/pass':>9s} {'MUFU M/pass':>12s} {'floor us':>9s} {'bound':>6s} "
          f"{'measured us':>12s} {'floor/measured':>15s}")
    total_floor = total_meas = total_mem = total_mufu = 0.0
    for name, bpt, wbytes, mpt in layer_kernels(cfg, args.chunks, args.gate_in_conv, args.silu_ops,
                                                 args.sum_directions):
        mb = (bpt * tokens + wbytes) / 1e6
        mufu = mpt * tokens / 1e6
        t_mem = mb / (args.dram_tbs * 1e6) * 1e6
        t_mufu = mufu / (args.mufu_tops * 1e6) * 1e6
        floor = max(t_mem, t_mufu)
        total_floor += floor
        total_mem += t_mem
        total_mufu += t_mufu
        m = measured.get(name)
        if m is not None:
            total_meas += m
        print(f"{name:10s} {mb:9.1f} {mufu:12.1f} {floor:9.1f} {'MUFU' if t_mufu > t_mem else 'DRAM':>6s} "
              f"{(f'{m:.1f}' if m is not None else '-'):>12s} "
              f"{(f'{floor / m:.2f}' if m else '-'):>15s}")
    per_img = total_floor * depth / args.pass_images
    print(f"layer floor {total_floor:.1f} us per pass; {per_img:.2f} us per image over {depth} layers "
          f"-> at most {1e6 / per_img:,.0f} img/s for this unfused design")
    # two passes side by side (VIM_CUDA_PASS_STREAMS): one pass's memory-bound kernels can
    # run under the other's special-function-bound scan, so a layer needs at least the
    # larger of all its bytes over DRAM and all its MUFU operations over the MUFU rate
    ov = max(total_mem, total_mufu)
    per_img_ov = ov * depth / args.pass_images
    print(f"overlapped floor {ov:.1f} us per pass (DRAM {total_mem:.1f}, MUFU {total_mufu:.1f}); "
          f"{per_img_ov:.2f} us per image -> at most {1e6 / per_img_ov:,.0f} img/s with passes side by side")
    if total_meas:
        per_img_m = total_meas * depth / args.pass_images
        print(f"measured {total_meas:.1f} us per pass; {per_img_m:.2f} us per image -> "
              f"{1e6 / per_img_m:,.0f} img/s (layers only)")


if __name__ == "__main__":
    main()
