"""A cluster of several nodes (ray.cluster_utils.Cluster, all on this machine) losing one in the
middle of a render: the segment it was on is rendered again on another, and the output is the
one a single process gives."""

from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from test_cluster import watched_job  # noqa: E402
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
def three_nodes():
    """A head that renders nothing and two one-CPU nodes that do."""
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 80 * 1024 * 1024,
            "_system_config": FAST_HEALTH_CHECK,
        },
    )
    nodes = [cluster.add_node(**NODE), cluster.add_node(**NODE)]
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.parametrize("graceful", [False, True], ids=["killed", "shut down"])
def test_a_node_lost_mid_render_costs_its_segment_and_nothing_else(
    graceful, three_nodes, long_clip, slow_model, watched_reference, tmp_path
):
    cluster, nodes = three_nodes
    doomed = nodes[-1]
    removed = threading.Event()

    def lose_the_node_while_it_renders(progress) -> None:
        on_doomed = [a for a in progress.workers if a.node == doomed.node_id and a.segment is not None]
        if not removed.is_set() and any(a.frames > 0 for a in on_doomed):
            removed.set()
            cluster.remove_node(doomed, allow_graceful=graceful)

    result = upscale_video(
        watched_job(long_clip, tmp_path / "out.mp4", slow_model),
        backend=RayBackend("auto"),
        on_progress=lose_the_node_while_it_renders,
    )
    assert removed.is_set(), "the node was never seen rendering"
    assert result.frames == 144
    assert_same_render(result.output, watched_reference)
    nodes[-1] = cluster.add_node(**NODE)  # the next test starts with two nodes again
