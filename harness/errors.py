"""Every error the user's input can cause: each one ends a command with exit code 2.

The CLI catches :class:`BadInput` and nothing more specific, so a new kind of bad input
is a new subclass here, never a new ``except`` clause in a command.
"""

from __future__ import annotations


class BadInput(Exception):
    """Bad flag, case file or target, or nothing that can run here: exit code 2."""


class UsageError(BadInput):
    """A bad flag value, or a flag combination that selects nothing."""


class CaseError(BadInput, ValueError):
    """A bad case file or case: the message names file, case, key, expected and found."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        case: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.case = case
        self.key = key


class TargetError(BadInput):
    """The target cannot be loaded, or fits no API style: says what was looked for and found."""


class BackendUnavailable(BadInput):
    """The backend cannot run any planned case here (no NCCL build, too few GPUs)."""


class NotEnoughMemory(BadInput):
    """A planned case needs more memory than this machine has free: refused before any case
    runs, with the estimate (harness/cases/footprint.py), never left to the OOM killer."""
