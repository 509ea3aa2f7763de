"""Segment precision and recall exactly as the VCSL benchmark defines them (ant-research/VCSL,
``vcsl/metric.py``, ``precision_recall``), re-implemented here.

A box is ``(q_start, r_start, q_end, r_end)`` (query = source, reference = target). For one pair:

- precision on the query axis = (union, per predicted box, of its intersections with the truth boxes it
  overlaps, projected on the query axis; summed over predicted boxes) / (sum of predicted lengths on that
  axis); the same on the reference axis; precision = the product of the two;
- recall = the same with truth and prediction swapped;
- no prediction and no truth: P = R = 1; a prediction without truth: P = 0, R = 1; truth without
  prediction: P = 1, R = 0. Both denominators carry VCSL's ``+ 1e-6``.

Over a set of pairs, P and R are averaged over pairs (micro over pairs), and F = 2PR / (P + R).
"""

from __future__ import annotations

import numpy as np


def _union_len(spans: np.ndarray) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(spans.tolist()):
        if cur_e is None or cur_e < s:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return float(total)


def _inter(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lt = np.maximum(pred[:, None, :2], gt[None, :, :2])
    rb = np.minimum(pred[:, None, 2:], gt[None, :, 2:])
    wh = np.maximum(rb - lt, 0)
    return np.concatenate((lt, rb), axis=2), wh[:, :, 0] * wh[:, :, 1]


def _one_side(boxes: np.ndarray, inter_boxes: np.ndarray, areas: np.ndarray) -> float:
    tp_w = tp_h = 0.0
    for k, row in enumerate(areas):
        hits = np.flatnonzero(row > 0)
        if hits.size:
            tp_w += _union_len(inter_boxes[k, hits][:, [0, 2]])
            tp_h += _union_len(inter_boxes[k, hits][:, [1, 3]])
    p_w = float(np.sum(boxes[:, 2] - boxes[:, 0]))
    p_h = float(np.sum(boxes[:, 3] - boxes[:, 1]))
    return (tp_w / (p_w + 1e-6)) * (tp_h / (p_h + 1e-6))


def precision_recall(pred: list[list[float]], truth: list[list[float]]) -> tuple[float, float]:
    if pred and not truth:
        return 0.0, 1.0
    if truth and not pred:
        return 1.0, 0.0
    if not pred and not truth:
        return 1.0, 1.0
    p, g = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    ib, ia = _inter(p, g)
    precision = _one_side(p, ib, ia)
    recall = _one_side(g, ib.transpose(1, 0, 2), ia.T)
    return precision, recall


def f_score(pairs: list[tuple[list[list[float]], list[list[float]]]]) -> tuple[float, float, float]:
    """Mean precision, mean recall over pairs, and F."""
    if not pairs:
        return 0.0, 0.0, 0.0
    prs = [precision_recall(p, g) for p, g in pairs]
    p = float(np.mean([x[0] for x in prs]))
    r = float(np.mean([x[1] for x in prs]))
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)
