"""What one webhook delivery costs the receiver before any API call: prints medians and p99s,
passes or fails nothing.

Per delivery the receiver (`buildwright.triggers.receiver.handle`) parses the body, reads
every cached Build of the namespace that has a trigger into its model, keeps those whose
repository is the delivery's, checks the signature against each one's secret and picks the
matching `when[]` entries. Measured here, in one process, for namespaces of 10, 100 and 1,000
Builds with triggers, 1 in 10 of them on the pushed repository:

  parse      `core.triggers.parse_github` of a realistic push body (~5 kB)
  models     `Build.model_validate` of every Build with a trigger, all kept (what
             `builds_in_scope` does once per change of a Build; it keeps the models)
  match      `is_candidate` over all, then `signature_matches` and `matching_whens` of the
             candidates: with the receiver's models kept, parse + match is the delivery
  uncached   parse, then each Build parsed, matched and dropped (p50 and p99)

Run: .venv/bin/python bench/trigger_matching.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from buildwright.api.v1beta1 import Build
from buildwright.core import triggers

SECRET = b"bench-secret"
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


def build_body(index: int) -> dict[str, Any]:
    repo = index % 10  # one Build in ten builds the pushed repository
    return {
        "apiVersion": "shipwright.io/v1beta1", "kind": "Build",
        "metadata": {"name": f"app-{index}", "namespace": "bench", "uid": f"uid-{index}"},
        "spec": {
            "source": {"type": "Git", "git": {"url": f"https://github.com/org/repo-{repo}"}},
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": f"registry.example.com/org/app-{index}:latest"},
            "trigger": {"triggerSecret": "hook", "when": [
                {"name": "main", "type": "GitHub",
                 "github": {"events": ["Push"], "branches": ["main", "release-*"]}},
                {"name": "prs", "type": "GitHub", "github": {"events": ["PullRequest"]}},
            ]},
        },
        "status": {"registered": "True", "reason": "Succeeded"},
    }  # fmt: skip


def push_body() -> bytes:
    commits = [{"id": SHA, "message": "change " * 20, "author": {"name": "A", "email": "a@x"},
                "added": [f"src/file{i}.py" for i in range(20)], "removed": [],
                "modified": [f"lib/mod{i}.py" for i in range(20)]} for _ in range(5)]
    return json.dumps({
        "ref": "refs/heads/main", "before": "0" * 40, "after": SHA, "commits": commits,
        "repository": {"clone_url": "https://github.com/org/repo-0.git",
                       "html_url": "https://github.com/org/repo-0",
                       "ssh_url": "git@github.com:org/repo-0.git"},
        "pusher": {"name": "A", "email": "a@x"},
    }).encode()  # fmt: skip


def timed(rounds: int, call: Callable[[], object]) -> tuple[float, float]:
    for _ in range(min(rounds, 20)):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    body = push_body()
    headers = {"x-github-event": "push", "x-github-delivery": "d-1",
               "x-hub-signature-256": triggers.hmac_signature(SECRET, body)}  # fmt: skip
    print(f"push body {len(body)} bytes; {args.rounds} rounds each; times per delivery")
    print(f"{'builds':>7} {'parse p50':>11} {'models p50':>11} {'match p50':>11} "
          f"{'uncached p50':>13} {'uncached p99':>13}")  # fmt: skip
    for count in (10, 100, 1000):
        bodies = [build_body(i) for i in range(count)]
        delivery = triggers.parse_github(headers, body)
        models = [Build.model_validate(b) for b in bodies]

        def match(models: list[Build] = models, delivery: triggers.Delivery = delivery) -> int:
            found = 0
            for build in models:
                if triggers.is_candidate(build, delivery) and triggers.signature_matches(
                    "github", SECRET, headers, body
                ):
                    found += len(triggers.matching_whens(build, delivery))
            return found

        def whole(bodies: list[dict[str, Any]] = bodies) -> int:
            parsed = triggers.parse_github(headers, body)
            found = 0
            for raw in bodies:
                build = Build.model_validate(raw)
                if triggers.is_candidate(build, parsed) and triggers.signature_matches(
                    "github", SECRET, headers, body
                ):
                    found += len(triggers.matching_whens(build, parsed))
            return found

        assert match() == count // 10
        parse = timed(args.rounds, lambda: triggers.parse_github(headers, body))[0]

        def models_of(bodies: list[dict[str, Any]] = bodies) -> list[Build]:
            return [Build.model_validate(raw) for raw in bodies]

        model = timed(args.rounds, models_of)[0]
        matched = timed(args.rounds, match)[0]
        total = timed(args.rounds, whole)
        print(f"{count:>7} {parse * 1e3:>9.3f}ms {model * 1e3:>9.3f}ms {matched * 1e3:>9.3f}ms "
              f"{total[0] * 1e3:>11.3f}ms {total[1] * 1e3:>11.3f}ms")  # fmt: skip


if __name__ == "__main__":
    main()
