#!/usr/bin/env python3
"""Out-of-distribution detection on scikit-learn's bundled digits: `lorta detect` for every
method next to scikit-learn's EmpiricalCovariance / LedoitWolf Mahalanobis distances.

Called by scripts/digits-ood.sh (which fetches and verifies the wheel and builds lorta):

    python3 scripts/digits_ood.py --wheel WHEEL --work DIR --lorta PATH

Data: sklearn/datasets/data/digits.csv.gz from the wheel: 1797 rows of 64 pixel intensities
(integers 0..16) and a class 0..9.

Split (deterministic, no random numbers): among the rows of classes 0-8, in file order, every
third row (index % 3 == 2, index counted within classes 0-8) is a test row, the others are
training rows. The detectors are fitted on the training rows; they score the test rows of
classes 0-8 (ground truth 0, in-distribution) together with all rows of class 9 (ground
truth 1, out-of-distribution).

Constant columns: several pixels are 0 on every training row, so the empirical covariance of
all 64 columns is singular (our empirical estimator refuses it with "not positive definite";
scikit-learn's EmpiricalCovariance uses a pseudo-inverse). The main table therefore uses the
columns that are not constant on the training rows, for every method alike (scikit-learn
included). A second, smaller table uses all 64 columns: ridge / Ledoit-Wolf for lorta, and
scikit-learn with its pseudo-inverse.
"""
import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import sklearn
from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf
from sklearn.metrics import roc_auc_score

MEMBER = "sklearn/datasets/data/digits.csv.gz"


def load_digits_csv(wheel):
    with zipfile.ZipFile(wheel) as z:
        raw = z.read(MEMBER)
    data = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",")
    assert data.shape == (1797, 65), data.shape
    return data[:, :64], data[:, 64].astype(np.int64)


def split(x, y):
    inlier = np.flatnonzero(y <= 8)
    test_mask = (np.arange(inlier.size) % 3) == 2
    train_idx, test_idx = inlier[~test_mask], inlier[test_mask]
    ood_idx = np.flatnonzero(y == 9)
    score_idx = np.concatenate([test_idx, ood_idx])
    truth = np.concatenate([np.zeros(test_idx.size, np.int64), np.ones(ood_idx.size, np.int64)])
    return train_idx, score_idx, truth


def run_lorta(lorta, args, scores_path):
    cmd = [lorta, "detect"] + args + ["--scores-out", scores_path, "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    out = json.loads(r.stdout)
    scores = np.load(scores_path)
    return (out, scores), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--lorta", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)

    x_all, y_all = load_digits_csv(a.wheel)
    train_idx, score_idx, truth = split(x_all, y_all)
    train_full, score_full = x_all[train_idx], x_all[score_idx]
    constant = np.all(train_full == train_full[0], axis=0)
    keep = np.flatnonzero(~constant)
    print(f"digits: {x_all.shape[0]} rows; train {train_idx.size} rows of classes 0-8; "
          f"scored {score_idx.size} rows ({int((truth == 0).sum())} test rows of 0-8, {int(truth.sum())} of class 9)")
    print(f"constant columns on the training rows: {int(constant.sum())} of 64 "
          f"({', '.join(map(str, np.flatnonzero(constant)))}); kept {keep.size}")
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")

    def write(name, arr):
        path = os.path.join(a.work, name)
        np.save(path, arr)
        return path

    files = {}
    for tag, cols in (("kept", keep), ("all", np.arange(64))):
        files[tag] = dict(
            train=write(f"train_{tag}.npy", np.ascontiguousarray(train_full[:, cols], dtype=np.float32)),
            score=write(f"score_{tag}.npy", np.ascontiguousarray(score_full[:, cols], dtype=np.float32)),
        )
    train_labels = write("train_classes.npy", y_all[train_idx])
    truth_path = write("truth.npy", truth)
    scores_path = os.path.join(a.work, "scores.npy")

    def lorta_rows(tag, entries):
        rows = []
        for name, args in entries:
            full = args + ["--trusted", files[tag]["train"], "--data", files[tag]["score"], "--labels", truth_path]
            res, err = run_lorta(a.lorta, full, scores_path)
            if err:
                rows.append((f"lorta {name}", None, None, err))
                continue
            out, scores = res
            auc_sk = roc_auc_score(truth, scores)
            rows.append((f"lorta {name}", out["auroc"], out["tpr_at_5_fpr"], f"roc_auc_score on our scores {auc_sk:.6f}"))
        return rows

    def sklearn_rows(tag, cols):
        xt, xs = train_full[:, cols], score_full[:, cols]
        rows, scores = [], {}
        for name, est in (("EmpiricalCovariance", EmpiricalCovariance()), ("LedoitWolf", LedoitWolf()), ("OAS", OAS())):
            s = est.fit(xt).mahalanobis(xs)
            scores[name] = s
            rows.append((f"sklearn {name}.mahalanobis", roc_auc_score(truth, s), None, ""))
        return rows, scores

    lorta_methods = [
        ("mahalanobis --estimator empirical", ["--method", "mahalanobis", "--estimator", "empirical"]),
        ("mahalanobis --estimator ledoit-wolf", ["--method", "mahalanobis", "--estimator", "ledoit-wolf"]),
        ("mahalanobis --estimator oas", ["--method", "mahalanobis", "--estimator", "oas"]),
        ("mahalanobis --estimator ridge (1e-3)", ["--method", "mahalanobis", "--estimator", "ridge"]),
        ("class-mahalanobis --estimator ledoit-wolf", ["--method", "class-mahalanobis", "--estimator", "ledoit-wolf",
                                                        "--trusted-labels", train_labels]),
        ("relative-mahalanobis --estimator ledoit-wolf", ["--method", "relative-mahalanobis", "--estimator", "ledoit-wolf",
                                                           "--trusted-labels", train_labels]),
        ("spectral", ["--method", "spectral"]),
        ("que --estimator ledoit-wolf (alpha 4)", ["--method", "que", "--estimator", "ledoit-wolf"]),
        ("pseudo-class --modes 9 (ledoit-wolf)", ["--method", "pseudo-class", "--modes", "9", "--seed", "0"]),
    ]

    def table(title, rows):
        print()
        print(title)
        print(f"{'detector':58s} {'AUROC':>8s} {'TPR@5%FPR':>10s}  note")
        for name, auc, tpr, note in rows:
            a_ = f"{auc:8.4f}" if auc is not None else f"{'-':>8s}"
            t_ = f"{tpr:10.4f}" if tpr is not None else f"{'':>10s}"
            print(f"{name:58s} {a_} {t_}  {note}")

    for tag, cols, title in (("kept", keep, f"non-constant columns ({keep.size} features)"),
                             ("all", np.arange(64), f"all 64 columns ({int(constant.sum())} are constant, so the empirical covariance is singular: lorta's "
                                                   "empirical estimator refuses it by design, scikit-learn uses a pseudo-inverse)")):
        ours = lorta_rows(tag, lorta_methods)
        theirs, sk_scores = sklearn_rows(tag, cols)
        table(f"== {title} ==", theirs + ours)
        # Agreement of the Mahalanobis scores themselves (ours vs scikit-learn's).
        for est, sk in (("empirical", "EmpiricalCovariance"), ("ledoit-wolf", "LedoitWolf"), ("oas", "OAS")):
            res, err = run_lorta(a.lorta, ["--method", "mahalanobis", "--estimator", est, "--trusted", files[tag]["train"],
                                           "--data", files[tag]["score"]], scores_path)
            if err:
                print(f"  scores lorta {est} vs sklearn {sk}: lorta failed ({err})")
                continue
            ref = sk_scores[sk]
            rel = np.max(np.abs(res[1] - ref)) / np.max(np.abs(ref))
            note = ""
            if est == "empirical":
                n = train_full.shape[0]
                note = (f" (expected {1 / n:.2e}: our empirical covariance divides by n-1 like np.cov, scikit-learn's "
                        f"by n, so the squared distances differ by the factor (n-1)/n with n = {n}; the ranking and AUROC are the same)")
            print(f"  scores lorta {est} vs sklearn {sk}: max relative difference {rel:.2e}{note}")


if __name__ == "__main__":
    sys.exit(main())
