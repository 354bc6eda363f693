"""The peer of the benchmark's comparison (bench/peer.py) on a few BuildRuns.

Shipwright's build controller and Tekton's controller, installed and started on a private
control plane of their own (their CRDs replace buildwright's, so they cannot share the test
session's), complete a small burst through the bench's kubelet stand-in: one Pod each, every
BuildRun Succeeded with the digest the stand-in reports. Skips when the peer is not built;
never builds it (hack/build-peer.sh takes minutes; CI has no Go build of it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bench import peer
from bench.kubelet_proc import DIGEST
from bench.run import Api, Bench, drive, prepare_namespace

pytestmark = pytest.mark.skipif(
    peer.cached() is None,
    reason="the peer is not built (~/.cache/buildwright/peer is empty): run `make peer`; "
    "this test never builds it",
)
COUNT = 5
NAMESPACE = "peer-smoke"


async def test_peer_completes_a_small_burst_with_digests(tmp_path: Path) -> None:
    bench = Bench(tmp_path, audit_bodies=True)
    try:
        await asyncio.to_thread(bench.start)
        await asyncio.to_thread(bench.use, "shipwright")
        api = Api(bench.control_plane.kubeconfig_path)
        try:
            await prepare_namespace(api, NAMESPACE)
            observation = await drive(api, NAMESPACE, count=COUNT, rate=None, timeout=120)
        finally:
            await api.close()
    finally:
        await asyncio.to_thread(bench.stop)

    assert not observation.timed_out
    assert observation.create_errors == 0
    assert {name: len(t.pod_uids) for name, t in observation.tracks.items()} == {
        name: 1 for name in observation.tracks
    }
    assert {t.reason for t in observation.tracks.values()} == {"Succeeded"}
    assert {t.digest for t in observation.tracks.values()} == {DIGEST}
    assert observation.regressions == 0
