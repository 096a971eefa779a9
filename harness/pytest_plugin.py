"""pytest plugin (entry point `pytest11: dino_harness`): distributed tests on warm rank pools.

Options:  --dino-backend gloo|nccl   --dino-world-sizes 1,2|auto   --dino-dist-timeout SECONDS
          (prefixed: the plugin is loaded in every pytest run of the environment, and bare
          names such as --backend are common in ML projects' own conftest.py files)
Fixtures: rank_pools       session-scoped PoolCache (pools stay warm across tests)
          dist_run         run(program, payload=None, world_size=None, deadline_s=None) -> list;
                           program: a top-level function, or a "module:function" string
          dist_world_size  the test's world size; a test that uses it (or dist_run) runs
                           once per --dino-world-sizes entry, or per
                           @pytest.mark.world_size(n, ...)
          dist_backend     the --dino-backend value
Markers:  world_size(n, ...)  run on these world sizes instead of --dino-world-sizes
          nccl                needs NCCL and GPUs: skipped without

A spec this machine cannot run (NCCL without GPUs, more NCCL ranks than GPUs) skips the
test with the reason. Under pytest-xdist every xdist worker has its own pools; stores use
OS-picked ports, so workers never share a port or a file.

This module imports neither torch nor the runtime at import time: pytest loads it for
every run, including runs that have no distributed test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.runtime.program import Program

DEFAULT_WORLD_SIZES = "1,2"
DEFAULT_DIST_TIMEOUT_S = 60.0
BACKEND, WORLD_SIZES, TIMEOUT = "dino_backend", "dino_world_sizes", "dino_dist_timeout"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dino-harness", "dino-harness distributed tests")
    group.addoption("--dino-backend", action="store", default="gloo", choices=("gloo", "nccl"),
                    help="process-group backend of the rank pools (default: gloo)")
    group.addoption("--dino-world-sizes", action="store", default=DEFAULT_WORLD_SIZES,
                    help="comma-separated world sizes, or 'auto' (NCCL: 1..GPUs; gloo: 1,2,4)")
    group.addoption("--dino-dist-timeout", action="store", type=float,
                    default=DEFAULT_DIST_TIMEOUT_S,
                    help="deadline of one distributed run, seconds (default: 60); the process-group "
                         "timeout is set to half of it, at most 30 s")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "world_size(n, ...): run the test on rank pools of these world sizes")
    config.addinivalue_line("markers", "nccl: needs the NCCL backend and CUDA GPUs; skipped without")
    timeout = config.getoption(TIMEOUT)
    if timeout is not None and not timeout > 0:
        raise pytest.UsageError(f"--dino-dist-timeout must be positive, got {timeout}")
    text = config.getoption(WORLD_SIZES)
    if text and text.strip() != "auto":
        from harness.runtime.spec import parse_world_sizes

        try:
            parse_world_sizes(text, config.getoption(BACKEND))
        except ValueError as exc:
            raise pytest.UsageError(f"--dino-world-sizes: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str:
    return (f"dino-harness: backend={config.getoption(BACKEND)} "
            f"world-sizes={config.getoption(WORLD_SIZES)} dist-timeout={config.getoption(TIMEOUT):g}s")


def _configured_world_sizes(config: pytest.Config) -> list[int]:
    from harness.runtime.spec import parse_world_sizes

    return parse_world_sizes(config.getoption(WORLD_SIZES), config.getoption(BACKEND))


def _marker_world_sizes(node: Any) -> list[int] | None:
    marker = node.get_closest_marker("world_size")
    if marker is None:
        return None
    sizes: list[int] = []
    for arg in marker.args:
        for n in arg if isinstance(arg, (list, tuple)) else [arg]:
            if int(n) < 1:
                raise pytest.UsageError(f"{node.nodeid}: world_size marker needs positive sizes, got {n}")
            sizes.append(int(n))
    if not sizes:
        raise pytest.UsageError(f"{node.nodeid}: world_size marker needs at least one size")
    return sizes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dist_world_size" not in metafunc.fixturenames:
        return
    sizes = _marker_world_sizes(metafunc.definition)
    if sizes is None:
        sizes = _configured_world_sizes(metafunc.config)
    metafunc.parametrize("dist_world_size", sizes, ids=[f"ws{n}" for n in sizes])


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("nccl") is None:
        return
    if item.config.getoption(BACKEND) != "nccl":
        pytest.skip("needs --dino-backend nccl")
    from harness.runtime.spec import PoolSpec

    reason = PoolSpec("nccl", 1).unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def rank_pools() -> Iterator[Any]:
    """The session's warm pools (a PoolCache), closed at the end of the session."""
    from harness.runtime.cache import PoolCache

    cache = PoolCache()
    try:
        yield cache
    finally:
        cache.close_all()


@pytest.fixture(scope="session")
def dist_backend(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption(BACKEND))


@pytest.fixture
def dist_world_size(request: pytest.FixtureRequest) -> int:
    """Normally parametrized by pytest_generate_tests; this default serves a test that
    looks the fixture up dynamically."""
    sizes = _marker_world_sizes(request.node) or _configured_world_sizes(request.config)
    return sizes[0]


@pytest.fixture
def dist_run(rank_pools: Any, dist_backend: str, dist_world_size: int,
             pytestconfig: pytest.Config) -> Callable[..., list[Any]]:
    """run(program, payload=None, world_size=None, deadline_s=None) -> per-rank results.

    Runs ``program(ctx, payload)`` on every rank of the warm pool for (backend, world
    size). ``program`` is a top-level function (each rank imports it by its module and
    name) or a "package.module:function" string; a lambda, closure or local function is
    refused here, before any rank runs, with what to do instead. A RankFailure fails the
    test with every rank's outcome and traceback, and the next run gets a fresh pool."""
    from harness.runtime.pool import PoolUnavailable
    from harness.runtime.program import program_ref
    from harness.runtime.spec import PoolSpec, pg_timeout_for

    timeout = float(pytestconfig.getoption(TIMEOUT))
    pg_timeout = pg_timeout_for(timeout)

    def spec_for(world_size: int) -> Any:
        spec = PoolSpec(dist_backend, int(world_size), pg_timeout_s=pg_timeout)
        reason = spec.unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
        return spec

    default_spec = spec_for(dist_world_size)

    def run(program: Program, payload: Any = None, world_size: int | None = None,
            deadline_s: float | None = None) -> list[Any]:
        program = program_ref(program)  # a mistake here is the caller's: raised at once
        spec = default_spec if world_size is None else spec_for(world_size)
        try:
            return rank_pools.run(spec, program, payload, deadline_s=deadline_s or timeout)
        except PoolUnavailable as exc:
            pytest.skip(str(exc))

    return run
