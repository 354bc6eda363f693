"""A real local control plane (etcd + kube-apiserver) and a kubelet stand-in."""
