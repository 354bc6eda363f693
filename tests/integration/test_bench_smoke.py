"""The benchmark's driver on a small burst: keeps `make bench` working, checks correctness only.

Exactly one Pod per BuildRun, every BuildRun Succeeded, no status going backwards. Timings
are printed by `make bench`, never asserted here.
"""

from __future__ import annotations

from pathlib import Path

from bench.run import Api, drive, register_build

from buildwright_localcluster.kubelet import Outcome
from tests.integration.harness import SUCCESSFUL_RESULTS, Cluster

COUNT = 20


async def test_small_burst_gives_one_pod_per_buildrun_and_all_succeed(
    cluster: Cluster, kubeconfig: Path
) -> None:
    cluster.kubelet.script(cluster.namespace, {
        "step-results": Outcome(message=SUCCESSFUL_RESULTS, duration=0.005),
        "*": Outcome(duration=0.005),
    })  # fmt: skip
    api = Api(kubeconfig)
    try:
        await register_build(api, cluster.namespace)
        observation = await drive(api, cluster.namespace, count=COUNT, rate=None, timeout=20)
    finally:
        await api.close()

    assert not observation.timed_out, cluster.diagnostics()
    assert observation.create_errors == 0
    pods = {name: len(track.pod_uids) for name, track in observation.tracks.items()}
    assert pods == {name: 1 for name in pods} and len(pods) == COUNT
    assert {track.reason for track in observation.tracks.values()} == {"Succeeded"}
    assert observation.regressions == 0
    listed = sorted(p["metadata"]["name"] for p in cluster.pods())
    assert listed == sorted(f"{name}-pod" for name in pods)
    figures = observation.summary()
    assert figures["duplicate_pods"] == 0 and figures["not_succeeded"] == 0
    assert 0 < figures["to_pod_p50_ms"] <= figures["to_pod_max_ms"]
