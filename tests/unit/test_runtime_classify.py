"""How a run that ended badly is classified (failure.classify) and how the parent's view
of a run is updated event by event (RunState): plain inputs, no processes."""

from __future__ import annotations

import pytest

from harness.results import RankError
from harness.runtime.collective_log import Desync
from harness.runtime.failure import RunEnd, classify, crash_error
from harness.runtime.protocol import Collective, Error, Ok, ProtocolError, Ready, Run, Stop
from harness.runtime.run_state import RunState

PROGRAM = "pkg.mod:step"
STACK = '''Thread 0x00007f16ccdff6c0 (most recent call first):
  File "/x/harness/runtime/worker.py", line 159 in _watch_lifeline
  File "/usr/lib/python3.11/threading.py", line 982 in run

Current thread 0x00007f16eb61fb80 (most recent call first):
  File "/x/torch/distributed/distributed_c10d.py", line 3252 in all_reduce
  File "/x/pkg/mod.py", line 41 in step
  File "/x/harness/runtime/program.py", line 92 in call_program
  File "/x/harness/runtime/worker.py", line 137 in _serve
'''


def end(**kw: object) -> RunEnd:
    base: dict[str, object] = {"program": PROGRAM, "label": "gloo-ws3", "deadline_s": 20.0,
                               "outcomes": {}, "errors": {}, "running": []}
    return RunEnd(**{**base, **kw})  # type: ignore[arg-type]


def raised(rank: int, message: str = "planted") -> RankError:
    return RankError(rank=rank, type="ValueError", message=message, traceback="tb")


def test_ranks_running_at_the_deadline_with_nothing_failed_hang_and_say_where() -> None:
    f = classify(end(outcomes={0: "ok"}, running=[1, 2], stacks={1: STACK, 2: ""}))
    assert f.kind == "hang"
    assert f.outcomes == {0: "ok", 1: "hung", 2: "hung"}
    assert f.ranks == [1, 2]
    assert f.errors[0].type == "Hang" and f.errors[0].traceback == STACK
    assert f.errors[0].message == (
        "rank 1 still running pkg.mod:step after the 20 s deadline, in all_reduce "
        "(distributed/distributed_c10d.py:3252) <- step (pkg/mod.py:41)")
    assert "in unknown (no stack dump)" in f.errors[1].message
    assert f.stacks == {1: STACK, 2: ""}


def test_ranks_still_running_after_another_failed_were_killed_not_hung() -> None:
    f = classify(end(outcomes={1: "raised"}, errors={1: raised(1)}, running=[0, 2],
                     failed_first=True))
    assert f.kind == "error"
    assert f.outcomes == {0: "killed", 1: "raised", 2: "killed"}
    assert f.ranks == [1]  # the killed ranks are consequences: no error of their own


def test_a_crash_comes_before_the_errors_it_caused() -> None:
    crash = crash_error(2, -9, "")
    f = classify(end(outcomes={0: "raised", 1: "raised", 2: "crashed"},
                     errors={0: raised(0, "connection closed"), 1: raised(1, "connection closed"),
                             2: crash}, failed_first=True))
    assert f.kind == "crash"
    assert f.ranks == [2, 0, 1]
    assert f.first_error is crash and "SIGKILL" in crash.message


def test_errors_come_before_hangs_and_ranks_in_order_within_a_severity() -> None:
    f = classify(end(outcomes={2: "raised", 1: "raised"}, errors={2: raised(2), 1: raised(1)},
                     running=[0], failed_first=True))
    assert f.ranks == [1, 2] and f.outcomes[0] == "killed"


def test_a_desync_names_its_culprit_first_and_the_others_as_waiting() -> None:
    desync = Desync(culprit=2, seq=1, message="rank 2 finished after 0 collective(s) and ...")
    f = classify(end(outcomes={2: "ok"}, running=[0, 1], stacks={0: STACK, 1: ""},
                     waiting={0: "#1 all_reduce(SUM, float32, shape [1]) from step (mod.py:41)"},
                     desync=desync))
    assert f.kind == "hang"
    assert f.ranks[0] == 2
    culprit = f.errors[0]
    assert culprit.type == "Desync" and culprit.message == desync.message
    assert culprit.traceback == "(this rank had finished its program: no live stack)"
    assert f.diagnosis == desync.message
    assert f.outcomes == {0: "killed", 1: "killed", 2: "ok"}
    by_rank = {e.rank: e for e in f.errors}
    assert by_rank[0].type == "Waiting" and by_rank[0].traceback == STACK
    assert by_rank[0].message == "rank 0 waits in #1 all_reduce(SUM, float32, shape [1]) from step (mod.py:41)"
    assert by_rank[1].message == "rank 1 was still running pkg.mod:step"


def test_a_desync_culprit_still_running_hangs_with_its_own_stack() -> None:
    desync = Desync(culprit=1, seq=2, message="rank 1 broke the collective order at collective #2")
    f = classify(end(running=[0, 1], stacks={0: "s0", 1: "s1"}, desync=desync))
    assert f.outcomes == {0: "killed", 1: "hung"}
    assert [e.type for e in f.errors] == ["Desync", "Waiting"]
    assert f.errors[0].traceback == "s1"


def test_a_desync_ranks_first_even_behind_a_lower_rank() -> None:
    desync = Desync(culprit=3, seq=1, message="m")
    f = classify(end(outcomes={3: "ok"}, running=[0, 1, 2], desync=desync))
    assert f.ranks == [3, 0, 1, 2]


def test_the_collective_logs_and_timing_travel_with_the_failure() -> None:
    logs = {0: [{"seq": 1, "op": "all_reduce"}]}
    f = classify(end(running=[0], collectives=logs, elapsed_s=1.5))
    assert f.collectives == logs and f.elapsed_s == 1.5 and f.label == "gloo-ws3"


# ------------------------------------------------------------------------ RunState


def test_answers_errors_and_deaths_update_the_state() -> None:
    state = RunState(run_id=3, world_size=3)
    state.on_message(0, Ok(3, "zero"), now=10.0)
    assert state.pending == {1, 2} and state.first_failure is None
    state.on_message(1, Error(3, raised(1)), now=11.0)
    assert state.outcomes == {0: "ok", 1: "raised"} and state.first_failure == 11.0
    state.died(2, crash_error(2, -11, "segfault"), now=12.0)
    assert state.outcomes[2] == "crashed" and state.first_failure == 11.0  # the first one stays
    assert not state.pending and not state.succeeded


def test_the_grace_after_the_first_failure_shortens_the_wait() -> None:
    state = RunState(run_id=1, world_size=2)
    assert state.limit(deadline=100.0, grace_s=1.0) == 100.0
    state.died(1, crash_error(1, 3, ""), now=10.0)
    assert state.limit(deadline=100.0, grace_s=1.0) == 11.0
    assert state.limit(deadline=10.5, grace_s=1.0) == 10.5


def test_a_rank_that_answered_and_then_exited_has_answered() -> None:
    state = RunState(run_id=1, world_size=2)
    state.on_message(1, Ok(1, None), now=0.0)
    state.died(1, crash_error(1, 0, ""), now=0.0)
    assert state.outcomes == {1: "ok"} and not state.errors and state.first_failure is None


def test_a_stale_answer_to_an_earlier_run_is_ignored() -> None:
    state = RunState(run_id=5, world_size=2)
    state.on_message(0, Ok(4, "old"), now=0.0)
    state.on_message(0, Error(4, raised(0)), now=0.0)
    state.on_message(0, Collective(4, ("issued", 1, ("all_reduce", "SUM", "float32", (1,), 2), "", "?")), now=0.0)
    assert state.pending == {0, 1} and not state.errors and not state.logs[0].entries


def test_the_start_is_answered_by_ready() -> None:
    state = RunState(run_id=0, world_size=1)
    ready = Ready(pid=42, init_s=0.1, threads=2)
    state.on_message(0, ready, now=0.0)
    assert state.succeeded and state.results_in_order() == [ready]


def test_collective_events_fill_the_log_and_say_where_a_rank_waits() -> None:
    state = RunState(run_id=2, world_size=2)
    fingerprint = ("all_reduce", "SUM", "float32", (4,), 2)
    state.on_message(0, Collective(2, ("issued", 1, fingerprint, "step 1", "step (mod.py:41)")), now=0.0)
    state.on_message(1, Collective(2, ("issued", 1, fingerprint, "step 1", "step (mod.py:41)")), now=0.0)
    state.on_message(1, Collective(2, ("completed", 1)), now=0.0)
    assert state.waiting() == {0: "#1 all_reduce(SUM, float32, shape [4]) in step 1 from step (mod.py:41)"}
    assert [e["completed"] for e in state.collectives(tail=16)[1]] == [True]


@pytest.mark.parametrize("message", [Run(1, "m:f", b""), Stop()], ids=["run", "stop"])
def test_a_message_only_a_worker_receives_raises(message: object) -> None:
    with pytest.raises(ProtocolError, match="only a worker receives"):
        RunState(run_id=1, world_size=1).on_message(0, message, now=0.0)  # type: ignore[arg-type]
