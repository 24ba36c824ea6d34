#!/usr/bin/env python3
"""PyTorch peers of the CUDA path of batch-layer-norm, on the harness's shapes.

    python3 bench/peers/torch_bln.py [--repeats N] [--shapes 64,3136,64 4096,4096 ...]

Times (CUDA events, median of --repeats runs after warm-up), forward and forward+backward:
  * bln eager     - the formula of BLN-SPEC.md as PyTorch eager ops
  * bln compiled  - the same function under torch.compile (skipped with the reason if it fails)
  * layer_norm    - F.layer_norm over the last axis (C)
  * batch_norm    - F.batch_norm in training mode with statistics over B per (m, c),
                    i.e. on x viewed as [B, M*C] (the batch half of BLN)
on the same tensors. GB/s are at the minimum traffic of a fused kernel: 8 B/element for a
forward (read x, write y) and 20 B/element for forward+backward (the forward's 8, then
read x and dy and write dx). The table is markdown; the same rows follow as CSV lines
("csv,...").

Sanity first: the eager BLN (float32) against a float64 PyTorch version of the same
formula, forward (<= 1e-5) and autograd gradients dx, dgamma, dbeta (<= 1e-4),
||got - ref|| / ||ref||. Exit status 1 when a sanity check fails, 3 without torch/CUDA.
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the machine
    print("torch is not installed: skipping the PyTorch peers")
    sys.exit(3)

DEFAULT_SHAPES = ["64,3136,64", "256,196,256", "32,512,1024", "4096,4096", "25,84", "1,1024"]
DEVICE = torch.device("cuda")


def bln_forward(x, gamma, beta, eps: float, n: float):
    """BLN-SPEC.md training forward on x viewed as [B, M, C] (any rank >= 2)."""
    B, C = x.shape[0], x.shape[-1]
    x3 = x.reshape(B, -1, C)
    mu_b = x3.mean(0, keepdim=True)
    var_b = x3.var(0, unbiased=False, keepdim=True)
    mu_f = x3.mean(-1, keepdim=True)
    var_f = x3.var(-1, unbiased=False, keepdim=True)
    xb = (x3 - mu_b) * torch.rsqrt(var_b + eps)
    xf = (x3 - mu_f) * torch.rsqrt(var_f + eps)
    wf = 1.0 / n - 1e-4
    wb = 1.0 - (1.0 / n + 1e-4)
    y = gamma * (wf * xf + wb * xb) * (1.0 / math.sqrt(C)) + beta
    return y.reshape(x.shape)


def rel_err(got, ref):
    got = got.double()
    ref = ref.double()
    den = ref.norm()
    num = (got - ref).norm()
    return float(num / den) if den > 0 else float(num)


def median_ms(fn, repeats: int, warmup: int = 3):
    """Median milliseconds of fn: CUDA events on a GPU, a wall clock on the CPU."""
    cuda = torch.cuda.is_available() and DEVICE.type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        if cuda:
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    return times[len(times) // 2]


def sanity(shape, dev, eps=1e-3):
    torch.manual_seed(0)
    B, C = shape[0], shape[-1]
    x = torch.randn(*shape, device=dev)
    dy = torch.randn(*shape, device=dev)
    g = 1 + 0.2 * torch.randn(C, device=dev)
    be = 0.1 * torch.randn(C, device=dev)
    out = {}
    grads = {}
    for dt in (torch.float32, torch.float64):
        xs = x.detach().to(dt).clone().requires_grad_(True)
        gs = g.detach().to(dt).clone().requires_grad_(True)
        bs = be.detach().to(dt).clone().requires_grad_(True)
        y = bln_forward(xs, gs, bs, eps, float(B))
        y.backward(dy.to(dt))
        out[dt] = y.detach()
        grads[dt] = (xs.grad, gs.grad, bs.grad)
    ey = rel_err(out[torch.float32], out[torch.float64])
    eg = max(rel_err(a, b) for a, b in zip(grads[torch.float32], grads[torch.float64]))
    return ey, eg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--shapes", nargs="*", default=DEFAULT_SHAPES)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to try the script out")
    args = ap.parse_args()
    global DEVICE
    DEVICE = dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("torch has no CUDA device: skipping the PyTorch peers")
        return 3
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (timings are not GPU figures)"
    print(f"# PyTorch peers: torch {torch.__version__}, CUDA {torch.version.cuda}, {name}")
    torch.backends.cuda.matmul.allow_tf32 = False

    failed = 0
    print("\n## sanity: eager BLN float32 vs float64 (same formula)")
    for s in ["25,84", "8,3,33", "64,49,64"]:
        shape = [int(v) for v in s.split(",")]
        ey, eg = sanity(shape, dev)
        ok = ey <= 1e-5 and eg <= 1e-4
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'}  [{s}] forward {ey:.2e} (<= 1e-5), gradients {eg:.2e} (<= 1e-4)")

    compiled = None
    compile_note = ""
    if not args.no_compile:
        try:
            try:  # one compiled graph per shape and grad mode: keep them all
                torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
            except AttributeError:
                pass
            compiled = torch.compile(bln_forward, dynamic=False)
        except Exception as e:  # noqa: BLE001
            compile_note = f"torch.compile unavailable: {e}"

    rows = []
    for s in args.shapes:
        shape = [int(v) for v in s.split(",")]
        B, C = shape[0], shape[-1]
        numel = math.prod(shape)
        torch.manual_seed(1)
        x = torch.randn(*shape, device=dev)
        dy = torch.randn(*shape, device=dev)
        g = 1 + 0.2 * torch.randn(C, device=dev)
        be = 0.1 * torch.randn(C, device=dev)
        copy_dst = torch.empty_like(x)
        copy_ms = median_ms(lambda: copy_dst.copy_(x), args.repeats)
        copy_gbs = 8 * numel / (copy_ms * 1e6)

        MC = numel // B
        bn_w = torch.ones(MC, device=dev)
        bn_b = torch.zeros(MC, device=dev)
        peers = {
            "bln eager": lambda xx, gg, bb: bln_forward(xx, gg, bb, 1e-3, float(B)),
            "layer_norm": lambda xx, gg, bb: F.layer_norm(xx, (C,), gg, bb, 1e-3),
            "batch_norm": lambda xx, gg, bb: F.batch_norm(xx.reshape(B, MC), None, None, bn_w, bn_b, True, 0.0, 1e-3),
        }
        if compiled is not None:
            peers["bln compiled"] = lambda xx, gg, bb: compiled(xx, gg, bb, 1e-3, float(B))

        for name, fn in peers.items():
            for mode in ("forward", "forward+backward"):
                try:
                    if mode == "forward":
                        with torch.no_grad():
                            ms = median_ms(lambda: fn(x, g, be), args.repeats)
                        bpe = 8
                    else:
                        xr = x.detach().clone().requires_grad_(True)
                        gr = g.detach().clone().requires_grad_(True)
                        br = be.detach().clone().requires_grad_(True)

                        def step():
                            xr.grad = gr.grad = br.grad = None
                            y = fn(xr, gr, br)
                            y.backward(dy.reshape(y.shape))

                        ms = median_ms(step, args.repeats)
                        bpe = 20
                    rows.append((s, name, mode, ms, bpe * numel / (ms * 1e6), bpe, copy_gbs))
                except Exception as e:  # noqa: BLE001
                    print(f"[{s}] {name} {mode}: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    if compile_note:
        print(compile_note)
    print("\n| shape | peer | pass | ms (median) | GB/s | B/elem | memcpy GB/s | of memcpy |")
    print("|---|---|---|---|---|---|---|---|")
    for s, name, mode, ms, gbs, bpe, cgbs in rows:
        print(f"| [{s}] | {name} | {mode} | {ms:.4f} | {gbs:.1f} | {bpe} | {cgbs:.1f} | {100 * gbs / cgbs:.0f}% |")
    print("\ncsv,shape,peer,pass,ms,gbs,bytes_per_elem,memcpy_gbs")
    for s, name, mode, ms, gbs, bpe, cgbs in rows:
        print(f'csv,"[{s}]",{name},{mode},{ms:.5f},{gbs:.2f},{bpe},{cgbs:.2f}')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
