"""torch.matmul (float32) on the shapes of `lorta-bench sgemm`, GFLOP/s on 1 and 2 threads.

Run by scripts/bench-sgemm.sh right before `lorta-bench sgemm` so the two tables come from
one sitting (the machine is shared: compare ratios, not absolute figures from different runs).
Usage: python scripts/bench_torch_matmul.py
"""
import time

import torch

# (label, M, K, N, trans_a, trans_b): C[M × N] = op(A)[M × K] · op(B)[K × N]; a transposed
# operand is stored transposed (as in lt_sgemm) and passed as a transposed view.
SHAPES = [
    ("MiniLM qkv    Y = X·Wᵀ", 2048, 384, 1152, False, True),
    ("MiniLM ffn up Y = X·Wᵀ", 2048, 384, 1536, False, True),
    ("MiniLM ffn dn Y = X·Wᵀ", 2048, 1536, 384, False, True),
    ("MiniLM dX = dY·W      ", 2048, 1152, 384, False, False),
    ("MiniLM dW = dYᵀ·X     ", 1152, 2048, 384, True, False),
    ("SmolLM2 o     Y = X·Wᵀ", 1024, 576, 576, False, True),
    ("SmolLM2 up    Y = X·Wᵀ", 1024, 576, 1536, False, True),
    ("SmolLM2 down  Y = X·Wᵀ", 1024, 1536, 576, False, True),
    ("SmolLM2 head  Y = X·Wᵀ", 1024, 576, 49152, False, True),
]


def median_seconds(f, reps):
    f()
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    torch.manual_seed(0)
    print(f"== torch.matmul float32, torch {torch.__version__} ==")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        print(f"-- {threads} thread{'s' if threads > 1 else ''} --")
        print("   shape                   |    M ×    K ×     N | tA tB | torch GFLOP/s")
        for label, m, k, n, ta, tb in SHAPES:
            a = torch.rand(k, m).t() if ta else torch.rand(m, k)
            b = torch.rand(n, k).t() if tb else torch.rand(k, n)
            c = torch.empty(m, n)
            flops = 2.0 * m * n * k
            t = median_seconds(lambda: torch.matmul(a, b, out=c), 5 if flops > 2e10 else 15)
            print(f"   {label} | {m:4d} × {k:4d} × {n:5d} | {int(ta):2d} {int(tb):2d} | {flops / t / 1e9:13.1f}")
    print()


if __name__ == "__main__":
    main()
