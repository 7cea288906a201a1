"""A cluster of several nodes (ray.cluster_utils.Cluster, all on this machine) losing one in the
middle of a render: the segment it was on is rendered again on another, and the output is the
one a single process gives."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from test_cluster import job  # noqa: E402
from test_resume import assert_same_render  # noqa: E402

from vidsr.render import upscale_video  # noqa: E402
from vidsr.render.ray_executor import RayBackend  # noqa: E402

NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
# A node that stops answering is declared dead in about a second instead of about fifteen.
FAST_HEALTH_CHECK = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 2,
}


@pytest.fixture(scope="module")
def three_nodes(worker_hold):
    """A head that renders nothing and two one-CPU nodes that do (their workers can be held)."""
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 80 * 1024 * 1024,
            "_system_config": FAST_HEALTH_CHECK,
        },
    )
    nodes = [cluster.add_node(**NODE, env_vars=worker_hold.environment) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.parametrize("graceful", [False, True], ids=["killed", "shut down"])
def test_a_node_lost_mid_render_costs_its_segment_and_nothing_else(
    graceful, three_nodes, worker_hold, long_clip, slow_model, long_reference, tmp_path
):
    cluster, nodes = three_nodes
    lost: list[int] = []  # which of the nodes

    def lose_the_held_workers_node(progress) -> None:
        held = [a.node for a in progress.workers if a.segment == worker_hold.segment and a.node]
        if not lost and held and worker_hold.reached.exists():
            lost.append(next(i for i, node in enumerate(nodes) if node.node_id == held[0]))
            cluster.remove_node(nodes[lost[0]], allow_graceful=graceful)
            worker_hold.let_go()  # the segment's second run, on the other node, goes through

    with worker_hold.holding():
        result = upscale_video(
            job(long_clip, tmp_path / "out.mp4", slow_model, batch=1),
            backend=RayBackend("auto"),
            on_progress=lose_the_held_workers_node,
        )
    assert lost, "the node held in the middle of a segment was never seen"
    assert result.frames == 144
    assert_same_render(result.output, long_reference)
    nodes[lost[0]] = cluster.add_node(**NODE, env_vars=worker_hold.environment)  # two nodes again for the next test
