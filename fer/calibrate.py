"""Honest confidence: temperature scaling and the "may be another expression" uncertainty flag.

Temperature scaling divides the logits by one number T fitted to minimise the negative log-likelihood
on held-out faces. It is fitted on one half of validation and scored on the other (and swapped), so the
reported ECE is never measured on the faces T was fitted to; the shipped T is then fitted on all of
validation.

Where the FERPlus crowd voted, one set of logits answers two questions, and no single T answers both:
- the probabilities: how likely the crowd's majority would call the face each class. T is fitted to the
  crowd's label, and the ECE against that label says how true they are;
- the people's reading: what share of the ten people would call it that ("about 7 in 10"). A second T
  (`people_temperature`) is fitted to the crowd's vote shares. It is always softer: a majority of 7 in
  10 is the majority far more often than 7 times in 10. `people_shares` turns probabilities into it.

Faces whose FERPlus crowd majority is an expression outside our four (anger, disgust, fear, contempt)
are the "unknown" ones. The top probability barely tells them apart (the network was only ever shown
four labels), but its pooled features do: a logistic "another expression" head on those features,
fitted on the train faces the crowd put out of scope (classes reweighted to balance them, so its score
is 0.5 where both look equally likely: a score, not a probability), is the uncertainty. Its ridge
penalty is chosen on validation. The AUROC says how well a score separates out-of-scope validation
faces from in-scope ones. The threshold is chosen to flag a fixed share of the out-of-scope validation
faces, not of the in-scope ones: real photos score higher than FER2013's faces overall, so a threshold
set by the in-scope share on FER2013 flags far more in-scope faces in real photos. The head is also
fitted on degraded copies of the train faces (fer.card) for the same reason.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from fer.data import NO_CROWD_LABEL
from fer.metrics import auroc, expected_calibration_error, share_calibration_error, total_variation
from fer.predict import other_expression_scores, uncertainty_scores

# Ridge penalties on the standardised features that `choose_other_expression_head` tries: the best for a
# network's features depends on the network, so each `fer card` chooses again.
OTHER_HEAD_L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)

OUT_OF_SCOPE_FLAG_RATE = 0.75  # share of out-of-scope validation faces the threshold flags, at least


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """T > 0 minimising the cross-entropy of softmax(logits / T) against `targets`: class indices (N,), or
    distributions (N, K) such as the crowd's vote shares. A 1-D convex problem in log T."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(targets)
    y = y.long() if y.ndim == 1 else y.double()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=1).numpy()


def two_fold_halves(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A class-stratified random split of indices into two halves."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        first.append(members[: len(members) // 2])
        second.append(members[len(members) // 2 :])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def people_shares(probs: np.ndarray, temperature: float, people_temperature: float) -> np.ndarray:
    """Probabilities at `temperature` re-read at `people_temperature`: the share of people expected to
    choose each class. The same logits at another T, so the order of the classes never changes."""
    log_probs = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, 1.0))
    return softmax(np.atleast_2d(log_probs), people_temperature / temperature).reshape(np.shape(probs))


def cross_fitted_calibration(
    logits: np.ndarray, labels: np.ndarray, shares: np.ndarray | None = None, seed: int = 0
) -> dict:
    """Fit T on each half, report calibration before/after on the other half; plus T fitted on everything.

    Without `shares`, T is fitted to `labels` and ECE is against them. With the crowd's four vote shares
    (N, 4; all-zero rows where there are none), `labels` are the crowd's labels (data.NO_CROWD_LABEL where
    none): T is fitted to them, and each fold also reports the mean total-variation distance to the shares
    and the ECE against the share of people; `people` is the same for the people's T, fitted to the
    shares (the module docstring says why there are two)."""
    labelled = labels != NO_CROWD_LABEL
    has_shares = shares.sum(axis=1) > 0 if shares is not None else None

    def fit_labels(index: np.ndarray) -> float:
        index = index[labelled[index]]
        return fit_temperature(logits[index], labels[index])

    def fit_shares(index: np.ndarray) -> float:
        index = index[has_shares[index]]
        return fit_temperature(logits[index], shares[index])

    def scores(index: np.ndarray, t: float) -> dict:
        scored = index[labelled[index]]
        out = {"ece": expected_calibration_error(softmax(logits[scored], t), labels[scored])}
        if shares is not None:
            with_shares = index[has_shares[index]]
            probs = softmax(logits[with_shares], t)
            out["tv"] = float(total_variation(probs, shares[with_shares]).mean())
            out["share_ece"] = share_calibration_error(probs, shares[with_shares])
        return out

    # Halves stratified by the label (faces without one form their own stratum).
    halves = two_fold_halves(np.where(labelled, labels, -1), seed)

    def cross_fitted(fit) -> dict:
        folds = []
        for fit_half, score_half in (halves, halves[::-1]):
            t = fit(fit_half)
            before, after = scores(score_half, 1.0), scores(score_half, t)
            fold = {"temperature": t, "n_fit": int(len(fit_half)), "n_scored": int(len(score_half))}
            fold.update({f"{key}_before": value for key, value in before.items()})
            fold.update({f"{key}_after": value for key, value in after.items()})
            folds.append(fold)
        report = {"folds": folds}
        for key in folds[0]:
            if key.endswith(("_before", "_after")):
                report[key] = float(np.mean([f[key] for f in folds]))
        report["temperature"] = fit(np.arange(len(labels)))
        return report

    split = "on one stratified half of validation and scored on the other, then swapped"
    if shares is None:
        return {
            "method": f"temperature scaling fitted to the labels, {split}",
            "target": "labels",
            **cross_fitted(fit_labels),
        }
    return {
        "method": f"temperature scaling fitted to the crowd's label, {split}",
        "target": "crowd_label",
        **cross_fitted(fit_labels),
        "people": {
            "method": f"temperature scaling fitted to the crowd's four vote shares, {split}",
            "target": "crowd_vote_shares",
            **cross_fitted(fit_shares),
        },
    }


def fit_other_expression_head(embeddings: np.ndarray, out_of_scope: np.ndarray, l2: float) -> dict:
    """Logistic regression from pooled features to "the crowd saw another expression".

    Features are standardised for the fit and the standardisation is folded into the returned weight,
    so scoring is one dot product: sigmoid(embedding @ weight + bias) (fer.predict.other_expression_scores).
    """
    x = torch.as_tensor(embeddings, dtype=torch.float64)
    y = torch.as_tensor(out_of_scope, dtype=torch.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    positive = y.mean().clamp(1e-6, 1 - 1e-6)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        # pos_weight balances the rare out-of-scope faces (~2% of train) against the rest.
        loss = F.binary_cross_entropy_with_logits(z @ w + b, y, pos_weight=(1 - positive) / positive)
        loss = loss + l2 * (w**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    w, b = w.detach(), b.detach()
    return {"weight": (w / std).float(), "bias": float(b - (w * mean / std).sum())}


def choose_other_expression_head(
    train_embeddings: np.ndarray,
    train_out_of_scope: np.ndarray,
    val_embeddings: np.ndarray,
    val_out_of_scope: np.ndarray,
    grid: tuple[float, ...] = OTHER_HEAD_L2_GRID,
) -> tuple[dict, dict]:
    """The "another expression" head fitted on train at each ridge penalty in `grid`; the one whose score
    best separates validation's out-of-scope faces (AUROC) is returned, with how each penalty scored."""
    heads = {l2: fit_other_expression_head(train_embeddings, train_out_of_scope, l2) for l2 in grid}
    aurocs = {l2: auroc(other_expression_scores(val_embeddings, head), val_out_of_scope) for l2, head in heads.items()}
    best = max(grid, key=aurocs.__getitem__)
    return heads[best], {"l2": best, "validation_auroc_by_l2": {f"{l2:g}": aurocs[l2] for l2 in grid}}


def choose_threshold(scores: np.ndarray, out_of_scope: np.ndarray, flag_rate: float = OUT_OF_SCOPE_FLAG_RATE) -> float:
    """The highest threshold that still flags at least `flag_rate` of the out-of-scope faces."""
    return float(np.quantile(np.asarray(scores)[out_of_scope], 1 - flag_rate, method="lower"))


def uncertainty_report(
    scores: np.ndarray, out_of_scope: np.ndarray, threshold: float, probs: np.ndarray | None = None
) -> dict:
    """How well the uncertainty score separates out-of-scope faces, and what the threshold flags; with
    `probs`, also the AUROC of 1 - top probability for comparison."""
    scores = np.asarray(scores)
    flagged = scores >= threshold
    report = {
        "threshold": float(threshold),
        "auroc_out_of_scope": auroc(scores, out_of_scope),
        "n_out_of_scope": int(out_of_scope.sum()),
        "n_in_scope": int((~out_of_scope).sum()),
        "in_scope_flagged": float(flagged[~out_of_scope].mean()),
        "out_of_scope_flagged": float(flagged[out_of_scope].mean()) if out_of_scope.any() else None,
    }
    if probs is not None:
        report["auroc_out_of_scope_max_probability"] = auroc(uncertainty_scores(probs), out_of_scope)
    return report
