"""Deterministic data: float64 arrays from the case seed and the world size only.

Each value is already rounded to the dtype its tensor is given to the target in, so the
cast is exact and the float64 golden sees the target's numbers. Every sample has its own
random stream (``default_rng([seed, tensor id, global sample index])``), so global
sample ``i`` is the same at every world size.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import keys
from . import validate as v
from .choices import DISTRIBUTIONS, DTYPES, Distribution, Dtype
from .keys import key

_PROTOTYPE_STREAM = 1 << 40  # stream id of a tensor's prototype offsets (> any sample index)


@dataclass(frozen=True)
class LogitsSpec:
    """How logits are drawn: the ``logits`` sub-table of ``cases/README.md``, one key per field."""

    scale: float = key(1.0, keys.POSITIVE, "std of `normal`, half-width of `uniform`")
    distribution: Distribution = key("normal", v.v_enum(DISTRIBUTIONS), "the base draw")
    sample_offset: float = key(0.0, v.v_num(0.0), "std of an additive offset per row: per "
                               "sample and view")
    prototype_offset: float = key(0.0, v.v_num(0.0), "std of an additive offset per prototype, "
                                  "shared by every row: it makes centers O(1)")
    outlier_offset: float | None = key(None, v.v_num(), "every logit of one sample shifted by "
                                       "this (none: no outlier)")
    outlier_index: int = key(-1, keys.index, "which sample of the *global* batch gets "
                             "`outlier_offset` (valid at every world size)")

    @property
    def rms(self) -> float:
        """The typical |logit| (root mean square of base draw and offsets, outlier aside)."""
        std = self.scale if self.distribution == "normal" else self.scale / math.sqrt(3.0)
        return math.sqrt(std**2 + self.sample_offset**2 + self.prototype_offset**2)

    @property
    def bound(self) -> float:
        """A bound on |logit| that holds in practice: the uniform half-width (exact) or 5
        std of a normal draw, plus 5 std of each offset, plus |outlier_offset|."""
        base = self.scale if self.distribution == "uniform" else 5.0 * self.scale
        return base + 5.0 * (self.sample_offset + self.prototype_offset) + abs(self.outlier_offset or 0.0)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "scale": self.scale,
            "distribution": self.distribution,
            "sample_offset": self.sample_offset,
            "prototype_offset": self.prototype_offset,
        }
        if self.outlier_offset is not None:
            d["outlier_offset"] = self.outlier_offset
            d["outlier_index"] = self.outlier_index
        return d


def default_seed(name: str) -> int:
    """A 63-bit seed from SHA-256 of the case name: the same in every process and run
    (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.sha256(b"dino-harness/case/" + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def generate(spec: LogitsSpec, seed: int, tensor_id: int, lead: tuple[int, ...], n: int,
             k: int, dtype: Dtype, rows: range | None = None) -> np.ndarray:
    """``[*lead, len(rows), k]`` logits of global samples ``rows`` (default: all ``n``),
    exact in ``dtype``. A rank asks for its own rows only: each sample has its own stream,
    so no rank ever builds the global batch (at 64 ranks that was 64 copies of it)."""
    rows = range(n) if rows is None else rows
    if not (0 <= rows.start <= rows.stop <= n and rows.step == 1):
        raise ValueError(f"rows {rows} are not a slice of the {n} global samples")
    out = np.empty((*lead, len(rows), k), dtype=np.float64)
    row_shape = (*lead, k)
    for j, i in enumerate(rows):
        rng = np.random.default_rng([seed, tensor_id, i])
        if spec.distribution == "normal":
            x = rng.standard_normal(row_shape) * spec.scale
        else:
            x = rng.uniform(-spec.scale, spec.scale, row_shape)
        if spec.sample_offset:
            x += rng.standard_normal((*lead, 1)) * spec.sample_offset
        out[..., j, :] = x
    if spec.prototype_offset:
        rng = np.random.default_rng([seed, tensor_id, _PROTOTYPE_STREAM])
        out += rng.standard_normal(k) * spec.prototype_offset
    if spec.outlier_offset is not None and n:
        outlier = range(n)[spec.outlier_index]  # Python indexing into the global batch
        if outlier in rows:
            out[..., outlier - rows.start, :] += spec.outlier_offset
    return round_to_dtype(out, dtype)


def round_to_dtype(array: np.ndarray, dtype: Dtype) -> np.ndarray:
    """float64 copy of ``array`` rounded (to nearest even) to the values of ``dtype``.

    bfloat16 is rounded from float32 exactly as torch's ``.to(torch.bfloat16)`` does.
    """
    a = np.asarray(array, dtype=np.float64)
    if dtype == "float32":
        return a.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):  # beyond float16's range: inf, as torch gives
            return a.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        f32 = np.ascontiguousarray(a.astype(np.float32))
        bits = f32.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        out = rounded.astype(np.uint32).view(np.float32)
        out = np.where(np.isnan(f32), f32, out)  # keep NaN a NaN
        return out.astype(np.float64)
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
