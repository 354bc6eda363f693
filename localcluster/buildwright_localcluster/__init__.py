"""A real local control plane (etcd + kube-apiserver + kube-controller-manager) and a kubelet
stand-in, for the integration tier and local runs (no Docker, no kind).

- `ControlPlane` (controlplane.py): start/stop the components on loopback with generated TLS.
- `python -m buildwright_localcluster up|down|status --kubeconfig .local/kubeconfig`: the
  same, held by a detached process (`make cluster` / `make cluster-down`).
- `KubeletStandIn` (kubelet.py): registers a Node, binds and "runs" Pods per a script.
- `wait_until` (wait.py): polling with a deadline.
"""
