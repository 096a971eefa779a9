"""Argument checks: a bad input is a ValueError that names the argument and the shapes."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def momentum(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def iterations(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(
            f"{name} must be >= 1, got {value}: without an iteration the rows of the "
            "output are not distributions"
        )


def tensor_ndim(name: str, tensor: torch.Tensor, allowed: Sequence[int]) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{name} must be {want}, got shape {tuple(tensor.shape)}")


def min_ndim(name: str, tensor: torch.Tensor, ndim: int) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim < ndim:
        raise ValueError(f"{name} must have at least {ndim} dims, got shape {tuple(tensor.shape)}")


def same_dim(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor, dim: int, what: str) -> None:
    if a.shape[dim] != b.shape[dim]:
        raise ValueError(
            f"{what} of {names[0]} and {names[1]} differ: shapes {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def num_samples(value: object) -> None:
    if value is None or isinstance(value, torch.Tensor):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"num_samples must be None, a non-negative int or a tensor, got {value!r}"
        )


def bool_mask(name: str, tensor: torch.Tensor) -> None:
    tensor_ndim(name, tensor, (2,))
    if tensor.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool [images, N] mask, got {tensor.dtype}")


def row_count(name: str, value: object, rows: int) -> None:
    """A count of leading rows to keep: an int in ``[0, rows]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= rows:
        raise ValueError(f"{name} must be an int in [0, {rows}] (the rows given), got {value!r}")
