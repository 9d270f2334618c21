"""examples/runbook-plan/voltx.toml: the runbook's plan as configuration, routed as it says."""

from __future__ import annotations

import voltx.plugins
from _support import REPO
from voltx.project import load_project
from voltx.routing import resolve_routing

RUNBOOK = REPO / "examples" / "runbook-plan" / "voltx.toml"


def test_the_runbook_plan_routes_0_3_to_ssh_2_to_5_to_vast_and_the_rest_here() -> None:
    registry = voltx.plugins.registry()
    project = load_project(RUNBOOK, registry)  # every key checked against the plugins
    routing = resolve_routing(
        project.routing, registry.phases.values(), project.profile, project.backend
    )
    where = dict(routing.backends)
    assert where.pop("0.3") == "ssh"
    remote = {pid for pid, name in where.items() if name == "vast"}
    here = {pid for pid, name in where.items() if name == "local"}
    assert remote == {pid for pid in where if pid[0] in "2345"}, where
    assert here == {"0.2", "0.4", "1.1", "1.2"} & set(registry.phases), where
    assert remote | here == set(where)
    # With a budget over the whole run, and a lower one for the bottleneck.
    assert project.budget.run.dollars == 400.0
    assert project.budget.phases["2.1"].dollars == 250.0
    assert project.backend_settings["ssh"].dollars_per_hour == 1.10
