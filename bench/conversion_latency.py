"""Conversion latency per object: prints p50/p99, passes or fails nothing.

Three layers are measured so a slow figure can be placed:
  1. `convert()` alone (v1alpha1 → v1beta1 and back) for the book's Build;
  2. `handle_review()` with one object per review (what the apiserver sends on a get);
  3. one POST /convert over HTTPS on 127.0.0.1 per object, through a kept-alive connection,
     plus a list-sized review of 500 objects divided per object.

Run: .venv/bin/python bench/conversion_latency.py [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from buildwright.api.conversion import V1ALPHA1, V1BETA1, convert
from buildwright.webhook.certificates import generate_self_signed
from buildwright.webhook.review import handle_review
from buildwright.webhook.server import serve

BOOK_BUILD: dict[str, Any] = {
    "apiVersion": V1ALPHA1,
    "kind": "Build",
    "metadata": {"name": "kaniko-nodejs-build", "namespace": "default"},
    "spec": {
        "source": {
            "url": "https://github.com/shipwright-io/sample-nodejs",
            "contextDir": "docker-build",
        },
        "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
        "output": {
            "image": "quay.io/gitops-cookbook/sample-nodejs:latest",
            "credentials": {"name": "push-secret"},
        },
    },
}

# A Build that needs the stash annotation in both directions (the costlier path).
LOSSY_BUILD: dict[str, Any] = copy.deepcopy(BOOK_BUILD)
LOSSY_BUILD["spec"]["strategy"]["apiVersion"] = "shipwright.io/v1alpha1"
LOSSY_BUILD["spec"]["sources"] = [{"name": "asset", "type": "HTTP", "url": "https://x/y.tgz"}]
LOSSY_BUILD["spec"]["volumes"] = [{"name": "cache", "description": "d", "emptyDir": {}}]


def review(objects: list[dict[str, Any]], desired: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    }


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {cuts[49] * 1e6:8.1f} µs   p99 {cuts[98] * 1e6:8.1f} µs   "
        f"max {max(samples) * 1e6:8.1f} µs"
    )


def time_each(count: int, call: Callable[[], object]) -> list[float]:
    for _ in range(min(count, 100)):  # warm-up
        call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


async def over_https(count: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        ca_pem, cert_pem, key_pem = generate_self_signed(["localhost"], ["127.0.0.1"], days=1)
        cert_file, key_file = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        runner = await serve("127.0.0.1", 0, str(cert_file), str(key_file))
        host, port = runner.addresses[0][:2]
        url = f"https://{host}:{port}/convert"
        client_ssl = ssl.create_default_context(cadata=ca_pem.decode())
        try:
            async with aiohttp.ClientSession() as session:

                async def post(body: dict[str, Any]) -> None:
                    async with session.post(url, json=body, ssl=client_ssl) as response:
                        answer = await response.json()
                        assert answer["response"]["result"]["status"] == "Success"

                one = review([BOOK_BUILD], V1BETA1, "bench")
                for _ in range(50):
                    await post(one)
                samples = []
                for _ in range(count):
                    start = time.perf_counter()
                    await post(one)
                    samples.append(time.perf_counter() - start)
                batch = review([BOOK_BUILD] * 500, V1BETA1, "bench-list")
                start = time.perf_counter()
                await post(batch)
                per_object_in_list = (time.perf_counter() - start) / 500
        finally:
            await runner.cleanup()
    return samples, per_object_in_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="conversions per figure")
    count = parser.parse_args().count

    beta = convert(BOOK_BUILD, V1BETA1)
    lossy_beta = convert(LOSSY_BUILD, V1BETA1)
    one = review([BOOK_BUILD], V1BETA1, "bench")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("convert() Build alpha→beta", lambda: convert(BOOK_BUILD, V1BETA1)),
        ("convert() Build beta→alpha", lambda: convert(beta, V1ALPHA1)),
        ("convert() lossy Build alpha→beta", lambda: convert(LOSSY_BUILD, V1BETA1)),
        ("convert() lossy Build beta→alpha", lambda: convert(lossy_beta, V1ALPHA1)),
        ("handle_review() 1 Build", lambda: handle_review(one)),
    ]
    print(f"conversion latency per object, {count} conversions each")
    for label, call in cases:
        print(f"{label:<35}{percentiles(time_each(count, call))}")
    samples, per_object_in_list = asyncio.run(over_https(count))
    print(f"{'POST /convert HTTPS, 1 Build':<35}{percentiles(samples)}")
    print(f"{'POST /convert HTTPS, 500 Builds':<35}{per_object_in_list * 1e6:8.1f} µs per object")


if __name__ == "__main__":
    main()
