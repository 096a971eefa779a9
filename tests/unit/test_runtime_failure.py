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
from harness.runtime.stacks import (
    LOG_WRAPPER,
    dump_complete,
    in_collective_log,
    main_thread_frames,
    where,
)

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


# A real dump of a rank the parent signalled just after it announced an all_reduce and
# before it entered it (12 of 40 desync runs on a 2-core machine caught rank 0 there).
ANNOUNCING_DUMP = '''Thread 0x00007f7b67fff6c0 (most recent call first):
  File "/x/harness/runtime/worker.py", line 159 in _watch_lifeline
  File "/usr/lib/python3.11/threading.py", line 982 in run
  File "/usr/lib/python3.11/threading.py", line 1002 in _bootstrap

Current thread 0x00007f7b8688fb80 (most recent call first):
  File "/usr/lib/python3.11/multiprocessing/connection.py", line 384 in _send
  File "/usr/lib/python3.11/multiprocessing/connection.py", line 200 in send_bytes
  File "/x/harness/runtime/worker.py", line 75 in send
  File "/x/harness/runtime/worker.py", line 78 in log
  File "/x/harness/runtime/collective_log.py", line 112 in logged
  File "/x/harness/runtime/testing_programs.py", line 88 in skip_collective
  File "/x/harness/runtime/program.py", line 92 in call_program
  File "/x/harness/runtime/worker.py", line 137 in _serve
  File "/x/harness/runtime/worker.py", line 61 in worker_main
  File "/x/harness/runtime/zygote.py", line 336 in _fork_worker
  File "/x/harness/runtime/zygote.py", line 293 in zygote_main
  File "<string>", line 1 in <module>
'''
IN_COLLECTIVE_DUMP = ANNOUNCING_DUMP.replace(
    '''  File "/usr/lib/python3.11/multiprocessing/connection.py", line 384 in _send
  File "/usr/lib/python3.11/multiprocessing/connection.py", line 200 in send_bytes
  File "/x/harness/runtime/worker.py", line 75 in send
  File "/x/harness/runtime/worker.py", line 78 in log
''', '''  File "/x/torch/distributed/distributed_c10d.py", line 3252 in all_reduce
  File "/x/torch/distributed/c10d_logger.py", line 83 in wrapper
''')


def test_a_dump_is_complete_only_once_the_main_threads_outermost_frame_is_written() -> None:
    assert dump_complete(ANNOUNCING_DUMP)
    cut = ANNOUNCING_DUMP.index("Current thread")
    assert not dump_complete(ANNOUNCING_DUMP[:cut])  # the lifeline thread only
    assert not dump_complete(ANNOUNCING_DUMP[:cut] + "Current thread 0x00007f7b8688fb80 (most")
    assert not dump_complete(ANNOUNCING_DUMP.rpartition("  File")[0])  # all but the last frame
    assert not dump_complete(ANNOUNCING_DUMP.rstrip("\n"))  # the last line not finished
    assert dump_complete(ANNOUNCING_DUMP[:cut] + "Current thread 0x1 (most recent call first):\n"
                         + '  File "/x/deep.py", line 3 in f\n' * 100 + "  ...\n")
    assert not dump_complete("")


def test_a_rank_announcing_a_collective_is_told_from_one_inside_it() -> None:
    assert in_collective_log(ANNOUNCING_DUMP)
    assert not in_collective_log(IN_COLLECTIVE_DUMP)
    assert "in all_reduce" in IN_COLLECTIVE_DUMP
    assert not in_collective_log(HANG_DUMP)
    assert not in_collective_log("")


def test_the_collective_log_wrapper_is_the_frame_the_dumps_look_for() -> None:
    from harness.runtime import collective_log

    wrapped = collective_log._wrap("all_reduce", lambda *a, **k: None)
    assert (wrapped.__code__.co_name, wrapped.__code__.co_filename.endswith(LOG_WRAPPER[0])) == (
        LOG_WRAPPER[1], True)


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
