"""The kubelet stand-in in its own process, for the benchmark.

A separate process so that its threads (one per Pod) compete with the benchmark client's
clock only for CPU, not for the GIL: receipt times the client records stay honest.

Every container exits 0 after `--duration` seconds; `step-results` also writes a
termination message with an image digest, so each BuildRun can end `Succeeded` with output.

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
RESULTS_MESSAGE = json.dumps(
    [
        {"key": "shp-image-digest", "value": DIGEST, "type": 1},
        {"key": "shp-image-size", "value": "4242", "type": 1},
    ]
)


class FastExecutor(ScriptedExecutor):
    """Every container succeeds quickly; the results step reports a digest."""

    def __init__(self, duration: float) -> None:
        super().__init__(default_duration=duration)
        self.results = Outcome(message=RESULTS_MESSAGE, duration=duration)

    def outcome_for(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> Outcome:
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
