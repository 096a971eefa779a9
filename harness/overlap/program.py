"""The rank program of the overlap benchmark: the protocol, run SPMD on a warm pool.

    PoolCache().run(PoolSpec(backend, W), PROGRAM, payload, deadline_s=...)

payload: ``{"case": OverlapCase.to_payload(), "impl": str, "api": str, "ddp": bool,
"log_timed": bool}`` (``log_timed``, default False: whether the timed collectives -- the
barriers, the replayed all-reduce, the traced one -- go through the harness's collective
log; by default they bypass it, ``collective_log.unlogged``, so that the log's messages
to the parent are not timed).

Per iteration (after ``case.warmup`` unrecorded ones), four phases, each preceded by a
barrier (NCCL: barrier + device synchronisation) so that every rank starts it together,
and the forward pass done *before* it (it is not timed; one forward per iteration whose
graph each backward phase reuses with ``retain_graph``, or with ``--ddp`` one forward per
phase, as DDP allows one backward per forward):

1. compute     ``backward`` alone (no center all-reduce anywhere)
2. comm        the center all-reduce alone, blocking: the collectives the target's
               ``update_center`` / ``apply_center_update`` issue (probed once in warm-up:
               same sizes and dtypes), replayed with ``dist.all_reduce``
3. serial      the same blocking all-reduce, then ``backward``
4. overlapped  the real sequence: ``update_center`` (issue), ``backward``,
               ``apply_center_update`` (the wait that the next step's
               ``softmax_center_teacher`` would do first), with the center collective
               traced (trace.py): time inside the collective call and inside ``wait()``
               on its handle is the exposed communication

When the probe finds no collective (world size 1), phases 2 and 3 are not run: comm is
0 and serial equals the compute phase, by construction (skip_comm_phases).

The phase order rotates with the iteration (the same on every rank), so that no phase
always runs first or right after the comm phase. Every rank returns its raw per-iteration
times; the parent (metrics.py) derives the metrics.

Clocks: gloo -> clock_host.HostClock; NCCL -> clock_cuda.CudaEventClock (events on the
compute stream, synchronised at the end of each phase) plus ``Work._get_duration``.

Paired measurement: phase 4 also gives the all-reduce's own duration *in that same
iteration* (``allreduce_overlapped_ms``: first traced call to the last completion), so
``metrics.py`` can form ``hidden_fraction_paired`` per iteration, where the all-reduce's
jitter cancels; phases 1-3 stay as the cross-check.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from ..runtime.collective_log import unlogged
from ..targets import load_target
from .cases import OverlapCase
from .clock_cuda import CudaEventClock, nccl_timing_requested, work_duration_ms
from .clock_host import HostClock
from .trace import CollectiveTracer
from .workload import Workload

PHASES = ("compute", "comm", "serial", "overlapped")
PROGRAM = "harness.overlap.program:overlap_rank"


def make_clock(backend: str, device: torch.device) -> Any:
    """One clock per backend: host for gloo, CUDA events for NCCL."""
    if backend == "nccl":
        return CudaEventClock(device)
    return HostClock()


def allreduce_spans(calls: list[dict[str, Any]], clock: Any, m0: Any, *,
                    nccl: bool) -> list[dict[str, Any]]:
    """Timeline spans (ms from m0) of the traced collective calls (see trace.py):
    gloo -- call start to the done-callback stamp (async) or to the call's return
    (blocking); NCCL -- call start for ``Work._get_duration`` ms, marked estimated, or
    (blocking: the compute stream waited for it inside the call) to the call's return;
    a call whose end is unknown gets no span."""
    spans = []
    for call in calls:
        start = clock.elapsed_ms(m0, call["start"])
        work = call["work"]
        if nccl and work is not None:
            duration = work_duration_ms(work) if work is not None else None
            if duration is None:
                continue
            spans.append({"name": "allreduce", "start_ms": start, "end_ms": start + duration,
                          "estimated": True})
            continue
        if work is None:  # a blocking call: it ended when the call returned
            end = clock.elapsed_ms(m0, call["end"])
        elif call.get("done_ns") is not None:
            end = clock.elapsed_ms(m0, call["done_ns"])
        else:
            continue
        spans.append({"name": "allreduce", "start_ms": start, "end_ms": end})
    return spans


class RankProtocol:
    def __init__(self, ctx: Any, case: OverlapCase, *, impl: str, api: str, ddp: bool,
                 log_timed: bool = False, adapter: str | None = None) -> None:
        self.ctx = ctx
        self.log_timed = log_timed
        # The timed collectives, past the collective log unless asked (module docstring).
        self.all_reduce = dist.all_reduce if log_timed else unlogged("all_reduce")
        self.dist_barrier = dist.barrier if log_timed else unlogged("barrier")
        self.case = case
        self.nccl = ctx.backend == "nccl"
        self.device = ctx.device
        self.clock = make_clock(ctx.backend, ctx.device)
        target = load_target(impl, api, adapter)
        loss = target.api.DINOv1Loss(temperature_student=case.student_temp,
                                     center_momentum=case.momentum)
        self.work = Workload(case, loss, ctx.device, ctx.rank, ddp=ddp)
        self.loss = loss
        # One forward per iteration, its graph retained and back-propagated by each of the
        # three phases that run backward (every timed backward keeps its buffers alike).
        # DDP allows one backward per forward: there each phase runs its own forward.
        self.share_graph = not ddp
        self.notes: list[str] = []
        self.collectives: list[str] = []
        self.comm_buffers: list[torch.Tensor] = []

    # ------------------------------------------------------------------ helpers
    def barrier(self) -> None:
        if self.nccl:
            self.dist_barrier(device_ids=[self.device.index])
            torch.cuda.synchronize(self.device)
        else:
            self.dist_barrier()

    def blocking_comm(self) -> list[Any]:
        """The replayed center all-reduce(s), blocking (NCCL: the compute stream waits)."""
        works = []
        for buf in self.comm_buffers:
            if self.nccl:
                work = self.all_reduce(buf, async_op=True)
                work.wait()
                works.append(work)
            else:
                self.all_reduce(buf)
        return works

    def comm_work_ms(self, works: list[Any]) -> float | None:
        if not works:
            return None
        durations = [work_duration_ms(w) for w in works]
        return None if any(d is None for d in durations) else float(sum(durations))

    # ------------------------------------------------------------------ probe
    def probe(self) -> None:
        """Which collectives does the target's centering issue? (sizes and dtypes)"""
        from ..runtime.collectives import CollectiveRecorder

        value, t = self.work.forward()
        self.work.zero_grad()
        recorder = CollectiveRecorder()
        with recorder:
            with recorder.section("update_center"):
                self.loss.update_center(t)
            with recorder.section("apply_center_update"):
                self.loss.apply_center_update()
        value.backward()
        seen = [c for calls in recorder.sections.values() for c in calls]
        self.collectives = [f"{name}: {c}" for name, calls in recorder.sections.items() for c in calls]
        for c in seen:
            if "allreduce" not in c.op:
                self.notes.append(f"the centering issues {c}; the comm phase replays it as an "
                                  f"all_reduce of the same size")
            dtype = getattr(torch, c.dtype, torch.float32) if c.dtype != "-" else torch.float32
            self.comm_buffers.append(torch.zeros(max(c.numel, 1), dtype=dtype, device=self.device))
        sync = [name for name, calls in recorder.sections.items()
                if name == "apply_center_update" and calls]
        if sync:
            self.notes.append("apply_center_update issues a collective itself: it runs after "
                              "backward and counts as exposed")
        if not seen and self.ctx.world_size > 1:
            self.notes.append("no collective of the centering was seen at world size "
                              f"{self.ctx.world_size}: comm is 0 and the hidden fraction undefined")

    # ------------------------------------------------------------------ phases
    def graph(self, shared: tuple[Any, Any] | None) -> tuple[Any, Any]:
        """The iteration's shared graph, or (DDP) a fresh forward; grads cleared."""
        value, t = shared if shared is not None else self.work.forward()
        self.work.zero_grad()
        return value, t

    def backward(self, value: Any) -> None:
        value.backward(retain_graph=self.share_graph)

    def phase_compute(self, shared: tuple[Any, Any] | None) -> dict[str, Any]:
        value, _ = self.graph(shared)
        self.barrier()
        c = self.clock
        m0 = c.mark()
        self.backward(value)
        m1 = c.mark()
        c.finish()
        return {"bwd_ms": c.elapsed_ms(m0, m1)}

    def phase_comm(self, shared: tuple[Any, Any] | None) -> dict[str, Any]:
        self.barrier()
        c = self.clock
        m0 = c.mark()
        works = self.blocking_comm()
        m1 = c.mark()
        c.finish()
        return {"comm_ms": c.elapsed_ms(m0, m1), "comm_work_ms": self.comm_work_ms(works)}

    def phase_serial(self, shared: tuple[Any, Any] | None) -> dict[str, Any]:
        value, _ = self.graph(shared)
        self.barrier()
        c = self.clock
        m0 = c.mark()
        works = self.blocking_comm()
        m1 = c.mark()
        self.backward(value)
        m2 = c.mark()
        c.finish()
        return {"serial_ms": c.elapsed_ms(m0, m2), "serial_comm_ms": c.elapsed_ms(m0, m1),
                "serial_bwd_ms": c.elapsed_ms(m1, m2),
                "serial_comm_work_ms": self.comm_work_ms(works)}

    def phase_overlapped(self, shared: tuple[Any, Any] | None) -> dict[str, Any]:
        value, t = self.graph(shared)
        self.barrier()
        c = self.clock
        with CollectiveTracer(c, self.ctx.backend, logged=self.log_timed) as tracer:
            m0 = c.mark()
            self.loss.update_center(t)
            m1 = c.mark()
            self.backward(value)
            m2 = c.mark()
            self.loss.apply_center_update()
            m3 = c.mark()
        c.finish()
        issue, bwd_end, end = c.elapsed_ms(m0, m1), c.elapsed_ms(m0, m2), c.elapsed_ms(m0, m3)
        call_ms, wait_ms = tracer.exposed_ms()
        spans = [{"name": "issue", "start_ms": 0.0, "end_ms": issue},
                 {"name": "backward", "start_ms": issue, "end_ms": bwd_end},
                 {"name": "wait", "start_ms": bwd_end, "end_ms": end}]
        ar = allreduce_spans(tracer.calls, c, m0, nccl=self.nccl)
        spans += ar
        tracer.release()
        return {"overlapped_ms": end, "issue_ms": issue, "bwd_overlapped_ms": bwd_end - issue,
                "apply_ms": end - bwd_end, "traced": tracer.seen,
                "collective_call_ms": call_ms, "wait_ms": wait_ms,
                "spans": spans, "origin_ms": c.absolute_ms(m0),
                "allreduce_overlapped_ms": (max(s["end_ms"] for s in ar)
                                            - min(s["start_ms"] for s in ar)) if ar else None}

    def skip_comm_phases(self, record: dict[str, Any]) -> dict[str, Any]:
        """The centering sends nothing (world size 1, or a target that never communicates):
        phase 2 would time an empty list and phase 3 would be phase 1 again. They are not
        run; comm is 0 and serial is the compute phase's backward, by construction."""
        return {"comm_ms": 0.0, "comm_work_ms": None, "serial_ms": record["bwd_ms"],
                "serial_comm_ms": 0.0, "serial_bwd_ms": record["bwd_ms"],
                "serial_comm_work_ms": None, "comm_phases_skipped": True}

    # ------------------------------------------------------------------ driver
    def run(self) -> dict[str, Any]:
        case = self.case
        if self.nccl and not nccl_timing_requested():
            self.notes.append("TORCH_NCCL_ENABLE_TIMING was not set when the process group was "
                              "created: no NCCL work durations (comm_work_ms, allreduce span)")
        self.probe()
        records = []
        for i in range(case.warmup + case.iterations):
            shift = i % len(PHASES)
            record: dict[str, Any] = {}
            shared = self.work.forward() if self.share_graph else None
            for name in PHASES[shift:] + PHASES[:shift]:
                if name in ("comm", "serial") and not self.comm_buffers:
                    continue  # nothing to send: see skip_comm_phases
                record.update(getattr(self, f"phase_{name}")(shared))
            if not self.comm_buffers:
                record.update(self.skip_comm_phases(record))
            del shared  # frees the retained graph, outside any timed region
            if i >= case.warmup:
                record["order"] = PHASES[shift]
                records.append(record)
        if self.loss.__dict__.get("_pending"):
            self.notes.append("an update was still pending after the last apply")
        return {
            "rank": self.ctx.rank,
            "clock": self.clock.name,
            "cross_rank_clock": bool(self.clock.cross_rank),
            "collectives": self.collectives,
            "n_collectives": len(self.comm_buffers),
            "comm_numel": int(sum(b.numel() for b in self.comm_buffers)),
            "threads": torch.get_num_threads(),
            "nccl_timing": nccl_timing_requested() if self.nccl else None,
            "log_timed": self.log_timed,
            "records": records,
            "notes": self.notes,
            "pid": os.getpid(),
        }


def overlap_rank(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Rank program (see the module docstring)."""
    case = OverlapCase.from_payload(payload["case"])
    protocol = RankProtocol(ctx, case, impl=payload.get("impl", "harness.losses"),
                            api=payload.get("api", "seed"), ddp=bool(payload.get("ddp", False)),
                            log_timed=bool(payload.get("log_timed", False)),
                            adapter=payload.get("adapter"))
    return protocol.run()
