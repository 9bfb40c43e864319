#!/usr/bin/env python3
"""Times activation-statistics accumulation: `lorta stats fit` against `numpy.cov`, on the same
100,000 x 384 float32 rows, in one run. Called by scripts/bench-stats.sh.

    python3 scripts/bench_stats.py --lorta PATH --work DIR [--rows 100000] [--dim 384] [--repeats 5]

lorta side, per repeat, one process `lorta stats fit --data rows.npy --out S --time --json`:
  update      the in-library statistics update (ActivationStatistics.update: float64 mean,
              scatter, third and fourth moments), as reported by --time;
  end-to-end  the wall time of the whole process (start, .npy read, update, safetensors write).
numpy side, in this process, data already in memory as float32:
  np.cov      np.cov(x, rowvar=False) (float64 result: numpy converts the float32 rows to
              float64, centres them, and multiplies with its bundled OpenBLAS);
  load+cov    np.load(rows.npy) followed by np.cov (comparable to lorta's end-to-end).
Medians over the repeats are reported, with speed-ups = numpy time / lorta time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorta", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    data = os.path.join(a.work, f"rows_{a.rows}x{a.dim}.npy")
    if not os.path.exists(data):
        rng = np.random.default_rng(12345)
        x = rng.standard_normal((a.rows, a.dim), dtype=np.float32)
        x = x * np.linspace(0.5, 2.0, a.dim, dtype=np.float32) + np.float32(3)
        np.save(data + ".tmp.npy", x)
        os.replace(data + ".tmp.npy", data)
    out = os.path.join(a.work, "stats.safetensors")

    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i['internal_api']} {i.get('version')}, core {i.get('architecture')} ({i['num_threads']} threads)" for i in threadpool_info()
                if i.get("user_api") == "blas"]
    except ImportError:
        blas = ["threadpoolctl not installed"]
    print(f"data: {data} ({a.rows} x {a.dim} float32, {os.path.getsize(data) / 1e6:.1f} MB)")
    print(f"numpy {np.__version__}, BLAS: {'; '.join(blas)}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"LORTA_NUM_THREADS={os.environ.get('LORTA_NUM_THREADS', '(unset)')}, cpus={os.cpu_count()}")

    lorta_update, lorta_e2e, lorta_read = [], [], []
    numpy_cov, numpy_e2e = [], []
    x = np.load(data)
    for r in range(a.repeats):
        t = time.perf_counter()
        p = subprocess.run([a.lorta, "stats", "fit", "--data", data, "--out", out, "--time", "--json"],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"lorta failed: {p.stderr}")
        j = json.loads(p.stdout)
        lorta_update.append(j["update_seconds"])
        lorta_read.append(j["read_seconds"])
        lorta_e2e.append(wall)
        if r == 0:
            print("lorta:", p.stderr.strip().splitlines()[0])

        t = time.perf_counter()
        c = np.cov(x, rowvar=False)
        numpy_cov.append(time.perf_counter() - t)
        t = time.perf_counter()
        c2 = np.cov(np.load(data), rowvar=False)
        numpy_e2e.append(time.perf_counter() - t)
        print(f"repeat {r + 1}: lorta update {lorta_update[-1]:.3f} s, end-to-end {wall:.3f} s | "
              f"np.cov {numpy_cov[-1]:.3f} s, load+cov {numpy_e2e[-1]:.3f} s", flush=True)

    # The two computations agree (lorta's covariance from its stored scatter, n - 1 like np.cov).
    from safetensors_check import scatter_of
    n, scatter = scatter_of(out)
    rel = np.max(np.abs(scatter / (n - 1) - c)) / np.max(np.abs(c))
    med = statistics.median
    print()
    print(f"median of {a.repeats}:")
    print(f"  lorta update (in library)        {med(lorta_update):8.3f} s")
    print(f"  lorta end-to-end (process)       {med(lorta_e2e):8.3f} s   (of which .npy read {med(lorta_read):.3f} s)")
    print(f"  numpy np.cov (data in memory)    {med(numpy_cov):8.3f} s")
    print(f"  numpy np.load + np.cov           {med(numpy_e2e):8.3f} s")
    print(f"  speed-up update vs np.cov        {med(numpy_cov) / med(lorta_update):8.2f}x   (target >= 1.5x)")
    print(f"  speed-up end-to-end vs load+cov  {med(numpy_e2e) / med(lorta_e2e):8.2f}x")
    print(f"  covariance agreement: max |lorta - np.cov| / max |np.cov| = {rel:.2e}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
