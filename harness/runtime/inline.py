"""InlineExecutor: the same run() API when the harness itself was launched by torchrun.

Then there is nothing to spawn: this process *is* a rank (maybe on another node), the
default process group comes from env:// (MASTER_ADDR/PORT, RANK, WORLD_SIZE set by
torchrun), every rank runs the program in-process, and the results are gathered to
rank 0 (rank 0 gets the list, the others None).

Failures: every rank learns whether any rank failed (rank 0 broadcasts the errors), so
all ranks raise the same RankFailure and stay in step. A rank that hangs cannot be
interrupted from inside; faulthandler.dump_traceback_later prints its stacks and exits
the process at the deadline, and torchrun then tears the job down: the run never hangs,
but it ends the job rather than raising.
"""

from __future__ import annotations

import faulthandler
import inspect
import os
import sys
import time
from datetime import timedelta
from typing import Any

from harness.results import RankError
from harness.runtime.failure import OK, RAISED, RankFailure
from harness.runtime.program import Program, call_program, program_ref
from harness.runtime.spec import BACKENDS, RankContext

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """True when torchrun (or another env:// launcher) made this process a rank."""
    env = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" in env and "RANK" in env and "WORLD_SIZE" in env:
        return True
    return all(k in env for k in TORCHRUN_ENV)


class InlineExecutor:
    """Runs programs on the ranks torchrun started. Same run() contract as RankPool,
    except that only rank 0 gets the results (the others get None)."""

    def __init__(self, backend: str = "gloo", *, pg_timeout_s: float = 30.0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        self.pg_timeout_s = pg_timeout_s
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.start_s: float | None = None
        self._ctx: RankContext | None = None
        self._state = "new"
        self._owns_group = False

    @property
    def alive(self) -> bool:
        return self._state == "ready"

    def start(self) -> float:
        """Join the default process group (env://), unless the caller already did."""
        import torch
        import torch.distributed as dist

        if self._state != "new":
            raise RuntimeError("an InlineExecutor starts once")
        t0 = time.monotonic()
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
            device = torch.device("cuda", self.local_rank)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            kwargs: dict[str, Any] = {
                "backend": self.backend, "init_method": "env://",
                "timeout": timedelta(seconds=self.pg_timeout_s),
            }
            if self.backend == "nccl" and "device_id" in inspect.signature(dist.init_process_group).parameters:
                kwargs["device_id"] = device
            dist.init_process_group(**kwargs)
            self._owns_group = True
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self._ctx = RankContext(rank=self.rank, world_size=self.world_size, backend=self.backend,
                                device=device, local_rank=self.local_rank, mode="inline")
        self._state = "ready"
        self.start_s = time.monotonic() - t0
        return self.start_s

    def run(self, program: Program, payload: Any = None, *, deadline_s: float) -> list[Any] | None:
        """Run program(ctx, payload) on every rank; rank 0 gets the results in rank order."""
        import torch.distributed as dist

        program = program_ref(program)
        if self._state == "new":
            self.start()
        if not self.alive or self._ctx is None:
            raise RuntimeError("the inline executor is dead after a failed run (its group cannot be trusted)")
        ctx = self._ctx
        t0 = time.monotonic()
        # The hang backstop: dump every thread's stack and exit; torchrun ends the job.
        faulthandler.dump_traceback_later(deadline_s, repeat=False, file=sys.stderr, exit=True)
        try:
            reply = call_program(ctx, program, payload)
            gathered: list[Any] | None = [None] * ctx.world_size if ctx.rank == 0 else None
            dist.gather_object(reply, gathered, dst=0)
            # Everyone learns the verdict, so all ranks raise (or return) together.
            verdict: list[Any] = [None]
            if ctx.rank == 0:
                assert gathered is not None
                verdict[0] = [r[1] for r in gathered if r[0] == "error"]
            dist.broadcast_object_list(verdict, src=0)
        finally:
            faulthandler.cancel_dump_traceback_later()
        errors: list[RankError] = verdict[0]
        if errors:
            self._state = "dead"
            failed = {e.rank for e in errors}
            outcomes = {r: (RAISED if r in failed else OK) for r in range(ctx.world_size)}
            raise RankFailure("error", errors, outcomes, program=program,
                              label=f"{self.backend}-ws{ctx.world_size}-inline",
                              elapsed_s=time.monotonic() - t0)
        if ctx.rank != 0:
            return None
        assert gathered is not None
        return [r[1] for r in gathered]

    def close(self) -> None:
        """Idempotent; destroys the process group only if start() created it."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
