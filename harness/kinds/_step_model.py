"""The step kind's model on the ranks (torch): the float64 golden's heads, in float32.

Backbone-free, as small as a real step allows: a CLS head and, where the step has iBOT,
a patch head, each ``x -> tanh(x W1 + b1) -> h W2 + b2`` with every width K; the weights
are :func:`harness.golden.step.initial_params` of the case seed, identical on every rank
and in the one-process run. Imported on the ranks only (torch).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn

from ..golden.step import PARAMETERS
from ..losses.step import HeadOutputs


class Heads(nn.Module):
    """The student (and, deep-copied, the teacher): ``forward(crops [S, B, D], masked [M, D])``."""

    def __init__(self, params: Mapping[str, np.ndarray], device: torch.device) -> None:
        super().__init__()
        self.heads = tuple(dict.fromkeys(name.partition(".")[0] for name in params))
        for name, value in params.items():
            self.register_parameter(_attribute(name), nn.Parameter(
                torch.tensor(value, dtype=torch.float32, device=device)))

    def head(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w1, b1, w2, b2 = (getattr(self, _attribute(f"{name}.{p}")) for p in PARAMETERS)
        hidden = torch.tanh(x @ w1 + b1)
        return hidden, hidden @ w2 + b2

    def forward(self, crops: torch.Tensor, masked: torch.Tensor) -> HeadOutputs:
        features, cls = self.head("cls", crops)
        patches = self.head("patch", masked)[1] if "patch" in self.heads else None
        return HeadOutputs(cls, features, patches)

    def weights(self) -> dict[str, np.ndarray]:
        """Every parameter, float64 on the host, by the golden's names."""
        return {name.replace("_", ".", 1): p.detach().to("cpu", torch.float64).numpy()
                for name, p in self.named_parameters()}


def _attribute(name: str) -> str:
    """``cls.w1`` -> ``cls_w1`` (a module attribute cannot hold a dot)."""
    return name.replace(".", "_")
