"""voltx.graph.Graph: producers, cycles, targets, closure, order and waves."""

from __future__ import annotations

import itertools

import pytest

from voltx.errors import GraphError, UnknownPhaseError
from voltx.graph import Graph
from voltx.spec import PhaseSpec


def spec(
    phase_id: str, requires: tuple[str, ...] = (), produces: tuple[str, ...] = ()
) -> PhaseSpec:
    return PhaseSpec(
        id=phase_id, name=phase_id, entry="x:y", requires=list(requires), produces=list(produces)
    )


def never_pinned(_name: str) -> bool:
    return False


@pytest.fixture
def diamond() -> Graph:
    """a -> (b, c) -> d, plus e that nothing needs."""
    return Graph.build(
        [
            spec("d", requires=("b_out", "c_out"), produces=("d_out",)),
            spec("b", requires=("a_out",), produces=("b_out",)),
            spec("c", requires=("a_out", "user_data"), produces=("c_out",)),
            spec("a", produces=("a_out",)),
            spec("e", produces=("e_out",)),
        ]
    )


# -- build -----------------------------------------------------------------------------------


def test_build_indexes_producers(diamond):
    assert diamond.producer == {
        "a_out": "a",
        "b_out": "b",
        "c_out": "c",
        "d_out": "d",
        "e_out": "e",
    }
    assert diamond.upstream("d") == ["b", "c"]
    assert diamond.upstream("c") == ["a"]  # user_data has no producer
    assert diamond.upstream("a") == []


def test_two_producers_name_both_phases():
    with pytest.raises(GraphError) as error:
        Graph.build([spec("2.1", produces=("model",)), spec("3.4", produces=("other", "model"))])
    assert error.value.phase_ids == ("2.1", "3.4")
    assert "'model'" in str(error.value)
    assert "2.1" in str(error.value) and "3.4" in str(error.value)


def test_a_duplicate_phase_id_is_refused():
    with pytest.raises(GraphError, match="'a'") as error:
        Graph.build([spec("a", produces=("x",)), spec("b"), spec("a", produces=("y",))])
    assert error.value.phase_ids == ("a",)


def test_a_cycle_is_listed():
    with pytest.raises(GraphError) as error:
        Graph.build(
            [
                spec("a", requires=("c_out",), produces=("a_out",)),
                spec("b", requires=("a_out",), produces=("b_out",)),
                spec("c", requires=("b_out",), produces=("c_out",)),
                spec("z", requires=("a_out",)),
            ]
        )
    cycle = error.value.phase_ids
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]
    assert "cycle: " + " -> ".join(cycle) in str(error.value)
    # Each step of the listed cycle really is an edge: the next phase is upstream of this one.
    graph_edges = {"a": "c", "b": "a", "c": "b"}
    assert all(graph_edges[x] == y for x, y in itertools.pairwise(cycle))


def test_a_phase_that_needs_its_own_output_is_a_cycle():
    with pytest.raises(GraphError, match="cycle: a -> a"):
        Graph.build([spec("a", requires=("a_out",), produces=("a_out",))])


# -- targets ---------------------------------------------------------------------------------


def test_resolve_targets_by_id_artifact_all_and_lists(diamond):
    assert diamond.resolve_targets("d") == ["d"]
    assert diamond.resolve_targets("c_out") == ["c"]
    assert diamond.resolve_targets("b, c_out,d") == ["b", "c", "d"]
    assert diamond.resolve_targets(["b", "c,b", "b_out"]) == ["b", "c"]
    assert sorted(diamond.resolve_targets("all")) == ["a", "b", "c", "d", "e"]
    assert sorted(diamond.resolve_targets("e,all")) == ["a", "b", "c", "d", "e"]


def test_unknown_target_suggests(diamond):
    with pytest.raises(UnknownPhaseError, match="did you mean c_out") as error:
        diamond.resolve_targets("b,c_uot")
    assert error.value.target == "c_uot"


def test_unknown_dotted_phase_suggests():
    graph = Graph.build([spec("2.1"), spec("2.10"), spec("3")])
    with pytest.raises(UnknownPhaseError, match=r"'2\.11'; did you mean 2\.1"):
        graph.resolve_targets("2.11")


def test_no_target_is_an_error(diamond):
    with pytest.raises(GraphError, match="no target"):
        diamond.resolve_targets(" , ")


# -- closure, order, waves -------------------------------------------------------------------


def test_closure_pulls_everything_upstream(diamond):
    assert diamond.closure(["d"], never_pinned) == ["a", "b", "c", "d"]
    assert diamond.closure(["c"], never_pinned) == ["a", "c"]
    assert diamond.closure(["e"], never_pinned) == ["e"]


def test_closure_uses_a_pinned_artifact_as_it_is(diamond):
    pinned = {"a_out"}.__contains__
    assert diamond.closure(["d"], pinned) == ["b", "c", "d"]
    assert diamond.closure(["c"], pinned) == ["c"]
    # Asked for explicitly, its producer still runs.
    assert diamond.closure(["a", "d"], pinned) == ["a", "b", "c", "d"]


def test_levels_of_a_diamond(diamond):
    assert diamond.levels(["a", "b", "c", "d"]) == [["a"], ["b", "c"], ["d"]]
    assert diamond.levels(["a", "b", "c", "d", "e"]) == [["a", "e"], ["b", "c"], ["d"]]
    assert diamond.levels(["b", "d"]) == [["b"], ["d"]]  # c is not part of this run
    assert diamond.levels([]) == []


def test_topological_order_is_numeric_by_id_part():
    graph = Graph.build([spec(i) for i in ("2.10", "10", "2.9", "2", "2.1", "translator", "1.a")])
    assert graph.topological(graph.phases) == [
        "1.a",
        "2",
        "2.1",
        "2.9",
        "2.10",
        "10",
        "translator",
    ]


def test_topological_order_puts_upstream_first_whatever_the_ids():
    graph = Graph.build(
        [
            spec("2.10", produces=("x",)),
            spec("2.9", requires=("x",), produces=("y",)),
            spec("1", requires=("y",)),
        ]
    )
    assert graph.topological(["1", "2.9", "2.10"]) == ["2.10", "2.9", "1"]
    assert graph.levels(["1", "2.9", "2.10"]) == [["2.10"], ["2.9"], ["1"]]
