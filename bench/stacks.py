"""Read the operator's sampled stacks (`bench/run.py --profile DIR`, py-spy's collapsed format).

    .venv/bin/python bench/stacks.py DIR/steady-10-0.operator.txt [--top 40] [--under FUNC]

Prints the share of busy samples per part of the operator (kopf, reconciles and their API
requests, watch decoding, socket reads…), then per function inclusive (the function and what it
calls) and by itself. Samples of an idle event loop (waiting in epoll) or an idle thread pool
are left out, so shares are of the time the process was busy in Python. With uvloop the
event loop, its sockets and TLS are C under `Runner.run`: those samples (waiting and working
alike) are left out too. `--under FUNC` keeps only the
stacks that pass through a function whose name contains FUNC. On a loaded machine a sample
is taken while the process waits for a core too: compare shares, not absolute counts.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

# Leaves of stacks that wait for something: not busy.
IDLE_LEAVES = ("EpollSelector.select", "concurrent/futures/thread.py:81", "Runner.run")
# The part of the operator a stack belongs to: the first group one of whose names it contains.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("kopf", ("kopf/",)),
    ("reconcile: API requests", ("Kube._request", "Kube.create", "Kube.merge_patch")),
    ("reconcile: the rest", ("KeyQueue._serve",)),
    ("timers", ("Scheduler._call",)),
    ("watch: decoding events", ("Kube.watch",)),
    ("watch: storing, waking", ("Informer._observe",)),
    ("watch: other", ("Informer._run",)),
    ("sockets: reading", ("_read_ready", "data_received")),
    ("sockets: writing", ("_SelectorSocketTransport.write", "SSLProtocol._do_write")),
]


def _function(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", default=None)
    args = parser.parse_args()
    parts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in args.stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        if any(leaf in frames[-1] for leaf in IDLE_LEAVES):
            idle += samples
            continue
        functions = [_function(f) for f in frames]
        if args.under and not any(args.under in f for f in functions):
            continue
        busy += samples
        own[functions[-1]] += samples
        for function in set(functions):
            inclusive[function] += samples
        part = next((name for name, marks in PARTS if any(m in stack for m in marks)), "other")
        parts[part] += samples
    print(f"busy samples: {busy} (idle left out: {idle})")
    for title, counter in (("part", parts), ("inclusive", inclusive), ("by itself", own)):
        print(f"--- {title}")
        for name, samples in counter.most_common(args.top):
            print(f"{100 * samples / max(busy, 1):5.1f}% {samples:7d}  {name}")


if __name__ == "__main__":
    main()
