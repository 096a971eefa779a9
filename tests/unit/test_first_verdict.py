"""What keeps the first verdict near the floor (a cold ``import torch``): behaviour only,
never times (the figures are in ``make bench``, benchmarks/bench_first_verdict.py).

* recording collectives does not import ``torch._dynamo`` (1.7 s of CPU per rank; it
  made ``comms-update-center`` take 2-6 s), yet still disables dynamo once it is loaded;
* the ``run`` command's module imports no torch, so the zygote can be booted before the
  parent's own ``import torch`` and the two overlap.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def test_recording_collectives_does_not_import_dynamo() -> None:
    out = _python("""
        import os, sys
        import torch, torch.distributed as dist
        from harness.runtime.collectives import CollectiveRecorder
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="0")
        store = dist.HashStore()
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        rec = CollectiveRecorder()
        with rec, rec.section("update_center"):
            dist.all_reduce(torch.ones(3), async_op=True).wait()
        print("torch._dynamo" in sys.modules, [str(c) for c in rec.sections["update_center"]])
    """)
    assert out == "False ['allreduce_(3 x float32)']"


def test_recorder_disables_dynamo_once_it_is_loaded() -> None:
    out = _python("""
        import torch, torch._dynamo, torch.distributed as dist
        from harness.runtime.collectives import CollectiveRecorder
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        seen = []
        real = torch._dynamo.disable
        torch._dynamo.disable = lambda fn, recursive=True: (seen.append(fn.__name__), real(fn, recursive))[1]
        rec = CollectiveRecorder()
        for _ in range(2):
            with rec, rec.section("s"):
                dist.all_reduce(torch.ones(2))
        print(seen, len(rec.sections["s"]))
    """)
    assert out == "['__torch_dispatch__'] 2"



def test_run_command_module_imports_no_torch() -> None:
    out = _python("""
        import sys
        import harness.cli, harness.commands.run, harness.runtime.pool
        print("torch" in sys.modules)
    """)
    assert out == "False"
