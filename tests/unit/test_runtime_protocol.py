"""The pool <-> worker wire (protocol.py): every message survives the trip, and what is
not a message is an error that names what arrived, never a silently dropped event."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from harness.results import RankError
from harness.runtime.collective_log import RankLog
from harness.runtime.protocol import (
    START_RUN_ID,
    Collective,
    Error,
    Ok,
    ProtocolError,
    Ready,
    Run,
    SpawnRequest,
    Stop,
    WorkerConfig,
    decode,
    encode,
)

CONFIG = WorkerConfig(
    rank=1, world_size=2, backend="gloo", pg_timeout_s=30.0, start_timeout_s=120.0,
    store_host="127.0.0.1", store_port=29500, sys_path=("/x",), cwd="/tmp", env={"A": "1"},
    num_threads=1, stacks_path="/tmp/rank1.stacks", flight_recorder_path="/tmp/rank1.fr",
)


@pytest.mark.parametrize("message", [
    Run(3, "pkg.mod:fn", pickle.dumps({"rank": 1})),
    Stop(),
    Ready(pid=123, init_s=0.5, threads=2),
    Ok(3, [1.0, 2.0]),
    Error(3, RankError(rank=1, type="ValueError", message="planted", traceback="tb")),
    Collective(3, ("completed", 4)),
], ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: object) -> None:
    assert decode(encode(message)) == message  # type: ignore[arg-type]


def test_the_wire_carries_tagged_tuples_not_classes() -> None:
    """A tuple of plain values: the tag table is the whole protocol."""
    assert pickle.loads(encode(Collective(2, ("completed", 1)))) == ("collective", 2, ("completed", 1))
    assert pickle.loads(encode(Stop())) == ("stop",)


def test_ready_answers_the_start() -> None:
    assert Ready(pid=1, init_s=0.0, threads=1).run_id == START_RUN_ID


@pytest.mark.parametrize("raw, named", [
    (("shutdown", 1), "'shutdown'"),
    (("ok",), "malformed 'ok'"),
    (("ok", 1, "result", "extra"), "malformed 'ok'"),
    (["run", 1, "m:f", b""], "unknown message ['run'"),
    ("stop", "unknown message 'stop'"),
    ((), "unknown message ()"),
])
def test_what_is_not_a_message_raises_naming_it(raw: object, named: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(pickle.dumps(raw))
    assert named in str(info.value)


def test_a_long_unknown_message_is_named_in_short() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(pickle.dumps(("huge", "x" * 10_000)))
    assert "'huge'" in str(info.value) and len(str(info.value)) < 400


def test_an_unknown_collective_event_raises() -> None:
    log = RankLog()
    log.record(("completed", 1))  # a completion of nothing recorded: tolerated (late)
    with pytest.raises(ProtocolError, match="'started'"):
        log.record(("started", 1))


def test_the_spawn_request_carries_the_config_through_the_zygote() -> None:
    request = SpawnRequest(pgid=0, log_path="/tmp/rank1.log", config=CONFIG)
    assert pickle.loads(pickle.dumps(request)) == request


def test_the_protocol_imports_no_torch() -> None:
    code = ("import sys, harness.runtime.protocol, harness.runtime.zygote; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
