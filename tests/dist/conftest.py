"""One test id per (case, backend, world size) of the catalogue, on the plugin's pools."""

from __future__ import annotations

import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import default_catalogue_dir, expand, load_cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "catalogue_case" not in metafunc.fixturenames:
        return
    from harness.runtime.spec import parse_world_sizes

    backend = metafunc.config.getoption("dino_backend")
    world_sizes = parse_world_sizes(metafunc.config.getoption("dino_world_sizes"), backend)
    plan = expand(load_cases([default_catalogue_dir()]), [backend], world_sizes)
    metafunc.parametrize(
        "catalogue_case",
        # Group by world size so that under `-n 2 --dist loadgroup` each xdist worker keeps
        # the pools of a few world sizes warm instead of all of them.
        [pytest.param(item, marks=pytest.mark.xdist_group(f"ws{item[2]}"),
                      id=item[0].test_id(item[1], item[2])) for item in plan],
    )
