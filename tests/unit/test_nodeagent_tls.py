"""`make run`'s node agent finds the kubelet certificates the local control plane wrote."""

from __future__ import annotations

import json
from pathlib import Path

from buildwright_localcluster.kubeletapi import KubeletTLS
from buildwright_localcluster.nodeagent import local_cluster_tls


def test_the_agent_reads_the_kubelet_tls_from_the_cluster_state(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    assert local_cluster_tls(kubeconfig) is None  # no cluster: no kubelet API
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "state.json").write_text(json.dumps({
        "kubelet_cert": "/p/kubelet.crt", "kubelet_key": "/p/kubelet.key",
        "kubelet_client_ca": "/p/ca.crt",
    }))  # fmt: skip
    assert local_cluster_tls(kubeconfig) == KubeletTLS(
        Path("/p/kubelet.crt"), Path("/p/kubelet.key"), Path("/p/ca.crt")
    )
