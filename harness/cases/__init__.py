"""Correctness cases: the key schema, loading and validation, data, sharding, tolerances.

Every key, default and rule is in ``cases/README.md`` (its key table is rendered from
the fields of ``Case``, ``model.py``). Kinds are plug-ins in ``harness.kinds``; this
package imports no torch.
"""

from ..errors import CaseError
from .choices import BACKENDS, COMMS_CALLS, DTYPES, QUANTITIES
from .data import LogitsSpec, default_seed, round_to_dtype
from .load import case_from_table, default_catalogue_dir, load_cases, load_unique, read_toml
from .model import Case, expand
from .sharding import shard
from .tolerances import FLOAT32_TOLERANCES, OUTPUT_ROUNDING

__all__ = [
    "BACKENDS",
    "COMMS_CALLS",
    "DTYPES",
    "FLOAT32_TOLERANCES",
    "OUTPUT_ROUNDING",
    "QUANTITIES",
    "Case",
    "CaseError",
    "case_from_table",
    "LogitsSpec",
    "default_catalogue_dir",
    "default_seed",
    "expand",
    "load_cases",
    "load_unique",
    "read_toml",
    "round_to_dtype",
    "shard",
]
