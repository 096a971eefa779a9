"""RankFailure, crash errors, stack summaries, program resolution: no processes started."""

from __future__ import annotations

import pickle
import signal

import pytest
import torch

from harness.results import RankError
from harness.runtime.failure import RankFailure, crash_error, failure_kind, signal_name
from harness.runtime.inline import launched_by_torchrun
from harness.runtime.program import error_from_exception, resolve_program, to_cpu
from harness.runtime.stacks import main_thread_frames, where

HANG_DUMP = '''Thread 0x00007f16ccdff6c0 (most recent call first):
  File "/x/harness/runtime/worker.py", line 159 in _watch_lifeline
  File "/usr/lib/python3.11/threading.py", line 982 in run

Current thread 0x00007f16eb61fb80 (most recent call first):
  File "/x/torch/distributed/distributed_c10d.py", line 3252 in all_reduce
  File "/x/torch/distributed/c10d_logger.py", line 83 in wrapper
  File "/x/harness/runtime/testing_programs.py", line 88 in skip_collective
  File "/x/harness/runtime/program.py", line 92 in call_program
  File "/x/harness/runtime/worker.py", line 137 in _serve
'''


def test_failure_kind_priority() -> None:
    assert failure_kind({0: "raised", 1: "crashed"}) == "crash"
    assert failure_kind({0: "raised", 1: "killed"}) == "error"
    assert failure_kind({0: "hung", 1: "ok"}) == "hang"


def test_crash_errors_name_the_signal_or_exit_code() -> None:
    e = crash_error(1, -signal.SIGSEGV, "Fatal Python error")
    assert (e.rank, e.type, e.signal, e.exit_code) == (1, "Crash", "SIGSEGV", None)
    assert "SIGSEGV" in e.message and e.traceback == "Fatal Python error"
    e = crash_error(0, 3, "")
    assert (e.signal, e.exit_code) == (None, 3) and "code 3" in e.message
    assert "unknown" in crash_error(2, None, "").message
    assert signal_name(signal.SIGKILL) == "SIGKILL" and signal_name(250) == "signal 250"


def test_rank_failure_reports_every_rank_and_pickles() -> None:
    errors = [crash_error(1, -9, ""), RankError(rank=0, type="RuntimeError", message="closed", traceback="tb")]
    f = RankFailure("crash", errors, {1: "crashed", 0: "raised"}, program="m:f", label="gloo-ws2",
                    stacks={0: "stack"}, elapsed_s=0.5)
    assert f.ranks == [1, 0] and f.first_error is errors[0]
    assert list(f.outcomes) == [0, 1]
    text = str(f)
    assert "rank crash in m:f on gloo-ws2" in text and "0=raised 1=crashed" in text and "tb" in text
    g = pickle.loads(pickle.dumps(f))
    assert (g.kind, g.ranks, g.outcomes, g.stacks, g.program) == (f.kind, f.ranks, f.outcomes, f.stacks, f.program)
    assert f.to_json()["outcomes"] == {"0": "raised", "1": "crashed"}
    with pytest.raises(ValueError):
        RankFailure("oops", [], {})


def test_where_names_the_wait_and_the_program() -> None:
    frames = main_thread_frames(HANG_DUMP)
    assert frames[0][2] == "all_reduce"
    assert where(HANG_DUMP) == (
        "all_reduce (distributed/distributed_c10d.py:3252) <- skip_collective (runtime/testing_programs.py:88)"
    )
    assert "unknown" in where("")


def test_resolve_program() -> None:
    assert resolve_program("harness.runtime.testing_programs:noop").__name__ == "noop"
    assert resolve_program("harness.runtime.spec:PoolSpec.unavailable_reason")
    for bad in ("no_colon", "mod:", ":fn", "__main__:fn"):
        with pytest.raises(ValueError):
            resolve_program(bad)
    with pytest.raises(ModuleNotFoundError):
        resolve_program("no.such.module:fn")
    with pytest.raises(AttributeError):
        resolve_program("harness.runtime.testing_programs:nope")
    with pytest.raises(TypeError):
        resolve_program("harness.runtime.spec:BACKENDS")


def test_to_cpu_detaches_nested_tensors() -> None:
    from collections import namedtuple

    Pair = namedtuple("Pair", "a b")
    t = torch.ones(2, requires_grad=True)
    out = to_cpu({"x": [t * 2, (t, 3)], "p": Pair(t, "s")})
    assert not out["x"][0].requires_grad and out["x"][1][1] == 3
    assert isinstance(out["p"], Pair) and not out["p"].a.requires_grad and out["p"].b == "s"


def test_error_from_exception() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        e = error_from_exception(3, exc)
    assert (e.rank, e.type) == (3, "KeyError") and "raise KeyError" in e.traceback
    e = error_from_exception(0, torch.distributed.DistBackendError("x"))
    assert e.type.endswith("DistBackendError")


def test_launched_by_torchrun() -> None:
    assert not launched_by_torchrun({})
    assert not launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "2"})
    assert launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert launched_by_torchrun({"RANK": "1", "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"})
