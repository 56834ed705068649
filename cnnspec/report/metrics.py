"""Classification metrics as data: confusion matrix, per-class precision, recall and F1."""

from __future__ import annotations

import torch


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, n_classes) counts; row = true class, column = predicted class.

    >>> confusion_matrix(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), 2).tolist()
    [[1, 1], [0, 2]]
    """
    index = labels.long() * n_classes + preds.long()
    return torch.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class(matrix: torch.Tensor) -> list[dict]:
    """Precision, recall, F1 and support per class (scikit-learn's definitions; 0 where a
    denominator is 0).

    >>> per_class(torch.tensor([[1, 1], [0, 2]]))[1]
    {'precision': 0.6666666666666666, 'recall': 1.0, 'f1': 0.8, 'support': 2}
    """
    out = []
    for i in range(matrix.shape[0]):
        tp = matrix[i, i].item()
        predicted, actual = matrix[:, i].sum().item(), matrix[i].sum().item()
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out.append({"precision": p, "recall": r, "f1": f1, "support": actual})
    return out


def accuracy(matrix: torch.Tensor) -> float:
    total = matrix.sum().item()
    return matrix.diag().sum().item() / total if total else 0.0
