"""find_desync: the rank that broke the collective order, named from the ranks' logs."""

from __future__ import annotations

from harness.runtime.collective_log import RankLog, find_desync

CENTER = ("all_reduce", "SUM", "float32", (65,), 2)
SHIFT = ("all_reduce", "MAX", "float32", (64,), 2)


def log(*events: tuple, finished: bool = False) -> RankLog:
    out = RankLog(finished=finished)
    for seq, (fingerprint, step, done) in enumerate(events, start=1):
        out.record(("issued", seq, fingerprint, step, "update_center (losses/dino.py:1)"))
        if done:
            out.record(("completed", seq))
    return out


def test_agreeing_ranks_have_no_desync():
    a = log((CENTER, "step 1", True), (CENTER, "step 2", True), finished=True)
    b = log((CENTER, "step 1", True), (CENTER, "step 2", True), finished=True)
    assert find_desync({0: a, 1: b}) is None


def test_a_finished_rank_missing_the_collective_another_waits_in():
    waiting = log((CENTER, "", True), (CENTER, "", False))
    finished = log((CENTER, "", True), finished=True)
    found = find_desync({0: waiting, 1: finished})
    assert found is not None and found.culprit == 1 and found.seq == 2
    assert "rank 1 finished after 1 collective(s) and never issued collective #2" in found.message
    assert "rank 0 waits in" in found.message and "shape [65]" in found.message


def test_a_rank_that_skipped_a_step_is_named_by_the_step_labels():
    # rank 1 skipped step 2: its #2 is step 3, which rank 0 issued as #3
    r0 = log((CENTER, "step 1", True), (CENTER, "step 2", True), (CENTER, "step 3", False))
    r1 = log((CENTER, "step 1", True), (CENTER, "step 3", True), finished=True)
    found = find_desync({0: r0, 1: r1})
    assert found is not None and found.culprit == 1 and found.seq == 2
    assert "in step 3" in found.message and "in step 2" in found.message


def test_the_majority_decides_with_three_ranks():
    good = [log((SHIFT, "", True), (CENTER, "", False)) for _ in range(2)]
    odd = log((SHIFT, "", True), (("all_reduce", "SUM", "float32", (64,), 2), "", False))
    found = find_desync({0: good[0], 1: odd, 2: good[1]})
    assert found is not None and found.culprit == 1 and "#2" in found.message


def test_two_ranks_without_evidence_wait_then_name_both_sides():
    r0 = log((SHIFT, "", False))
    r1 = log((CENTER, "", False))
    issued = max(e.issued_s for e in (*r0.entries, *r1.entries))
    assert find_desync({0: r0, 1: r1}, now=issued + 0.1) is None
    found = find_desync({0: r0, 1: r1}, now=issued + 5.0)
    assert found is not None and "ranks 0 and 1 disagree at collective #1" in found.message


def test_ranks_that_are_only_slow_are_no_desync():
    ahead = log((CENTER, "", True), (CENTER, "", False))
    behind = log((CENTER, "", True))  # not finished: it may still issue #2
    assert find_desync({0: ahead, 1: behind}, now=1e12) is None


def test_the_watch_finds_what_find_desync_finds_and_skips_the_agreed_prefix():
    from harness.runtime.collective_log import DesyncWatch

    r0 = log((CENTER, "step 1", True), (CENTER, "step 2", True), (CENTER, "step 3", False))
    r1 = log((CENTER, "step 1", True))
    watch = DesyncWatch({0: r0, 1: r1})
    assert watch.check(now=1e12) is None and watch.agreed == 1  # rank 1 may still issue #2
    r1.record(("issued", 2, CENTER, "step 3", "update_center (losses/dino.py:1)"))
    found = watch.check(now=1e12)
    assert found == find_desync({0: r0, 1: r1}, now=1e12)
    assert found is not None and found.culprit == 1 and found.seq == 2
