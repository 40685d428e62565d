"""List scheduling of a hand-made task graph on in-order resources."""

import pytest

from cosim.timeline import NO_RESOURCE, graph_from_lists, schedule


def test_diamond_on_two_streams():
    # 0: compute A (gpu) -> 1: send (net) and 2: compute B (gpu) -> 3: compute C (gpu) needs 1 and 2
    g = graph_from_lists(duration=[2.0, 5.0, 1.0, 1.0], resource=[0, 1, 0, 0],
                         deps=[[], [0], [0], [1, 2]], kind=[0, 1, 0, 0],
                         resources=("gpu", "net"), kinds=("compute", "transfer"))
    s = schedule(g)
    assert s.start.tolist() == [0.0, 2.0, 2.0, 7.0]
    assert s.makespan == 8.0
    assert s.busy_s == {"gpu": 4.0, "net": 5.0}
    assert s.busy_fraction("net") == pytest.approx(5 / 8)


def test_in_order_stream_does_not_reorder_ready_tasks():
    # task 1 (gpu) waits for a slow transfer; task 2 (gpu) is ready earlier but issued later:
    # a CUDA stream runs them in issue order, so task 2 waits behind task 1
    g = graph_from_lists(duration=[4.0, 1.0, 1.0], resource=[1, 0, 0], deps=[[], [0], []],
                         kind=[0, 0, 0], resources=("gpu", "net"), kinds=("t",))
    assert schedule(g).start.tolist() == [0.0, 4.0, 5.0]


def test_tasks_without_resource_overlap():
    g = graph_from_lists(duration=[3.0, 3.0], resource=[NO_RESOURCE, NO_RESOURCE], deps=[[], []],
                         kind=[0, 0], resources=("net",), kinds=("t",))
    assert schedule(g).makespan == 3.0


def test_malformed_graphs_name_the_array():
    with pytest.raises(ValueError, match="dep_index"):
        graph_from_lists([1.0, 1.0], [0, 0], [[1], []], [0, 0], ("gpu",), ("t",))
    with pytest.raises(ValueError, match="duration"):
        graph_from_lists([-1.0], [0], [[]], [0], ("gpu",), ("t",))
    with pytest.raises(ValueError, match="resource"):
        graph_from_lists([1.0], [3], [[]], [0], ("gpu",), ("t",))
