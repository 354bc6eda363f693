"""The kubelet stand-in in its own process, for the benchmark.

A separate process so that its threads (one per Pod) compete with the benchmark client's
clock only for CPU, not for the GIL: receipt times the client records stay honest.

Every container exits 0 after `--duration` seconds; `step-results` also writes a
termination message with an image digest, so each BuildRun can end `Succeeded` with output.
In the Pods of the peer (Tekton's, for Shipwright's controller: bench/peer.py) the last step
leaves the digest and size as result files, which Tekton's entrypoint reports in its
termination message (the stand-in plays that entrypoint) for Shipwright to read.

Run: python bench/kubelet_proc.py KUBECONFIG [--duration 0.005]; prints "ready" once it
watches Pods, and stops when its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from buildwright_localcluster.kubelet import KubeletStandIn, Outcome, ScriptedExecutor

DIGEST = "sha256:" + "cd" * 32
RESULTS = {"shp-image-digest": DIGEST, "shp-image-size": "4242"}
RESULTS_MESSAGE = json.dumps([{"key": k, "value": v, "type": 1} for k, v in RESULTS.items()])
TEKTON_TASKRUN_LABEL = "tekton.dev/taskRun"


class FastExecutor(ScriptedExecutor):
    """Every container succeeds quickly; the results step reports a digest."""

    def __init__(self, duration: float) -> None:
        super().__init__(default_duration=duration)
        self.results = Outcome(message=RESULTS_MESSAGE, duration=duration)
        self.result_files = Outcome(results=RESULTS, duration=duration)

    def outcome_for(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> Outcome:
        labels = pod.get("metadata", {}).get("labels") or {}
        if TEKTON_TASKRUN_LABEL in labels:
            containers = pod.get("spec", {}).get("containers") or [{}]
            last = container.get("name") == containers[-1].get("name")
            return self.result_files if last else self.default
        if container.get("name") == "step-results":
            return self.results
        return self.default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kubeconfig")
    parser.add_argument("--duration", type=float, default=0.005)
    args = parser.parse_args()
    with KubeletStandIn(args.kubeconfig, executor=FastExecutor(args.duration)):
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
