"""Property, through the real apiserver: whatever Builds, BuildRuns and strategies users write,
each one the apiserver accepts ends with a named reason, the operator neither crashes nor
retries without end, and no parameter value is spliced into a shipped strategy's shell script.

Hypothesis draws batches of cases (a strategy, a Build, a BuildRun) with hostile strings in
their fields; a batch is written at once and then waited for, so that the operator works on
many objects together as it does in real use. `make test` runs BUILDWRIGHT_PROPERTY_BATCHES
(default 30) batches of BATCH cases, about 300 cases in well under two minutes; a larger run
by hand, for example:

    BUILDWRIGHT_PROPERTY_BATCHES=500 .venv/bin/pytest -q \
        tests/integration/test_property_named_reasons.py

Runs are derandomised (the same cases every time) unless BUILDWRIGHT_PROPERTY_RANDOM=1, which
also prints hypothesis' reproduction blob for a failure. A failure found is recorded below as
an `@example`, so that it is run on every later run too.

Referenced object names are hostile too, `%`, `/`, `.` and `..` included: they are checked as
Kubernetes names before any lookup and every path segment is escaped.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from buildwright_localcluster.wait import wait_until
from tests.integration.harness import GROUP, VERSION, Body, Cluster

BATCHES = int(os.environ.get("BUILDWRIGHT_PROPERTY_BATCHES", "30"))
RANDOM = os.environ.get("BUILDWRIGHT_PROPERTY_RANDOM", "") == "1"
BATCH = 10
# How long one batch may take to end, every object of it: generous for a loaded machine, far
# below "never".
DEADLINE_SECONDS = 30.0
MARK = "SPLICEMARK"
SHIPPED = {"kaniko": ["dockerfile", "target"], "buildah": ["dockerfile", "target", "build-args"],
           "ko": ["go-flags", "package-directory"]}  # fmt: skip

HOSTILE_WORDS = [
    "", " ", "-", "0", "true", "null", "{}", "[]", "\\", '"', "'", "A=B", "=", "$", "$$",
    "$(params.dockerfile)", "$(results.shp-image-digest.path)", "$(echo pwned)", "`id`",
    "'; rm -rf / #", "\n", "\r\n", "\t", "\x00", "\x7f", "\a", "\u0085", "\u2028", "\ufeff",
    "\U0001f600", "\ud800", "ä", "%", "%zz", "/", "..", ".", "a" * 70, "b" * 300,
    "LD_PRELOAD", "BASH_FUNC_x%%", "HOME", "PATH", "results", "source-default",
    "image-processing", "source-local", "step-results", "Build", "1Gi", "-1", "1e400",
    "10m", "0s", "-5s", "1000000h", "9223372036854775807", "1.5h", "ten minutes",
    "kubernetes.io/os", "example.com/x", "Exists", "NoSchedule",
]  # fmt: skip
hostile = st.one_of(
    st.sampled_from(HOSTILE_WORDS),
    st.text(max_size=24),
    st.text(alphabet="abc-._/%$(){}' \"\\", max_size=12),
)
# Names that reach URL paths: as hostile as any other field (see the module docstring).
NAME_HOSTILE = hostile


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` six times in seven, else `other`: with a dozen fields each hostile now and then,
    enough cases get past validation to a Pod, and every field is hostile in some."""
    return st.integers(0, 6).flatmap(lambda n: other if n == 0 else usual)


maybe = mostly(st.none(), hostile)


@st.composite
def env_list(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    if draw(mostly(st.just(True), st.just(False))):
        return None
    return draw(st.lists(st.fixed_dictionaries(
        {"name": hostile}, optional={"value": hostile}), max_size=3))  # fmt: skip


@st.composite
def param_values(draw: st.DrawFn, names: list[str]) -> list[dict[str, Any]] | None:
    if draw(st.booleans()):
        return None
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(mostly(st.sampled_from(names), hostile))
        shape = draw(st.sampled_from(["value", "values", "configMapValue", "secretValue"]))
        if shape == "value":
            entries.append({"name": name, "value": draw(hostile) + MARK})
        elif shape == "values":
            entries.append({"name": name, "values": [
                {"value": draw(hostile) + MARK} for _ in range(draw(st.integers(0, 2)))]})
        else:
            entries.append({"name": name, shape: {"name": draw(NAME_HOSTILE),
                                                   "key": draw(hostile)}})  # fmt: skip
    return entries


@st.composite
def strategy_spec(draw: st.DrawFn) -> dict[str, Any]:
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        step: dict[str, Any] = {
            "name": draw(mostly(st.sampled_from(["build", "push", "prepare"]), hostile)),
            "command": ["/bin/sh", "-c", "echo $(params.p)"],
        }
        image = draw(mostly(st.sampled_from(["busybox", "busybox:1.36"]), st.none() | hostile))
        if image is not None:
            step["image"] = image
        env = draw(env_list())
        if env is not None:
            step["env"] = env
        if draw(st.booleans()):
            step["resources"] = {"limits": {
                draw(mostly(st.sampled_from(["cpu", "memory"]), hostile)):
                draw(mostly(st.sampled_from(["1", "500m", "1Gi"]), hostile))}}
        if draw(st.integers(0, 5)) == 0:
            step["securityContext"] = {"runAsUser": draw(st.integers(-1, 70000) | hostile)}
        steps.append(step)
    return {"parameters": [{"name": "p", "description": "d", "default": "x"}], "steps": steps}


@st.composite
def build_spec(draw: st.DrawFn, strategy_name: str | None) -> dict[str, Any]:
    if strategy_name is None:
        shipped = draw(st.sampled_from(sorted(SHIPPED)))
        strategy: dict[str, Any] = {"name": shipped, "kind": "ClusterBuildStrategy"}
        params = SHIPPED[shipped]
    else:
        strategy = {"name": draw(mostly(st.just(strategy_name), NAME_HOSTILE)),
                    "kind": draw(mostly(st.sampled_from(["BuildStrategy", None]), hostile))}
        params = ["p"]
    if strategy["kind"] is None:
        del strategy["kind"]
    others = st.sampled_from(["OCI", "Local", "none", "mismatch"])
    source_kind = draw(mostly(st.just("Git"), others))
    source: dict[str, Any] | None
    if source_kind == "Git":
        source = {"type": "Git", "git": {"url": draw(
            mostly(st.just("https://github.com/shipwright-io/sample-go"), hostile))}}
        if draw(st.booleans()):
            source["git"]["revision"] = draw(hostile)
        if draw(st.booleans()):
            source["contextDir"] = draw(hostile)
    elif source_kind == "OCI":
        source = {"type": "OCI", "ociArtifact": {"image": draw(hostile)}}
    elif source_kind == "Local":
        source = {"type": "Local", "local": {"name": draw(hostile), "timeout": draw(hostile)}}
    elif source_kind == "mismatch":
        source = {"type": "OCI", "git": {"url": draw(hostile)}}
    else:
        source = None
    spec: dict[str, Any] = {
        "strategy": strategy,
        "output": {"image": draw(mostly(st.just("registry.local/app"), hostile))},
    }
    if source is not None:
        spec["source"] = source
    optional: dict[str, Any] = {
        "paramValues": draw(param_values(params)),
        "env": draw(env_list()),
        "timeout": draw(maybe),
        "nodeSelector": draw(mostly(st.none(), st.dictionaries(hostile, hostile, max_size=2))),
        "schedulerName": draw(maybe),
        "runtimeClassName": draw(mostly(st.none(), NAME_HOSTILE)),
        "tolerations": draw(mostly(st.none(), st.lists(st.fixed_dictionaries(
            {"key": hostile, "operator": st.sampled_from(["Exists", "Equal"]) | hostile},
            optional={"value": hostile, "effect": hostile}), max_size=2))),
    }  # fmt: skip
    for key, value in optional.items():
        if value is not None:
            spec[key] = value
    if draw(st.booleans()):
        spec["output"]["pushSecret"] = draw(mostly(st.just("push-secret"), NAME_HOSTILE))
    if draw(st.integers(0, 4)) == 0:
        spec["output"]["timestamp"] = draw(hostile)
    return spec


@st.composite
def buildrun_spec(draw: st.DrawFn, build_name: str, embedded: dict[str, Any]) -> dict[str, Any]:
    embeds = draw(st.integers(0, 4)) == 0
    if embeds:
        spec: dict[str, Any] = {"build": {"spec": embedded}}
    else:
        spec = {"build": {"name": draw(mostly(st.just(build_name), NAME_HOSTILE))}}
    if embeds and draw(mostly(st.just(True), st.just(False))):
        return spec  # overrides of an embedded spec are refused (one in seven tries them)
    optional = {
        "serviceAccount": draw(mostly(st.none(), st.just(".generate") | NAME_HOSTILE)),
        "timeout": draw(maybe),
        "env": draw(env_list()),
        "paramValues": draw(param_values(["dockerfile", "p"])),
        "nodeSelector": draw(mostly(st.none(), st.dictionaries(hostile, hostile, max_size=2))),
        "state": draw(mostly(st.none(), st.just("BuildRunCanceled"))),
    }
    for key, value in optional.items():
        if value is not None:
            spec[key] = value
    return spec


_counter = itertools.count()
# Reasons seen, for a look at what the cases covered (printed with BUILDWRIGHT_PROPERTY_REPORT=1).
OUTCOMES: Counter[str] = Counter()


@dataclass
class Case:
    """The objects of one case, with their names; None where none was accepted."""

    strategy: str | None = None
    build: str | None = None
    buildrun: str | None = None
    shipped: bool = False
    rejected: list[str] = field(default_factory=list)


@st.composite
def case_bodies(draw: st.DrawFn) -> dict[str, Any]:
    index = next(_counter)
    shipped = draw(st.booleans())
    strategy_name = None if shipped else f"s{index}"
    bodies: dict[str, Any] = {"index": index}
    if strategy_name is not None:
        bodies["strategy"] = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
            "metadata": {"name": strategy_name}, "spec": draw(strategy_spec()),
        }  # fmt: skip
    spec = draw(build_spec(strategy_name))
    bodies["build"] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Build",
                       "metadata": {"name": f"b{index}"}, "spec": spec}  # fmt: skip
    bodies["buildrun"] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildRun",
                          "metadata": {"name": f"r{index}"},
                          "spec": draw(buildrun_spec(f"b{index}", spec))}  # fmt: skip
    bodies["shipped"] = shipped
    return bodies


def _create(cluster: Cluster, plural: str, body: Body, case: Case) -> str | None:
    try:
        cluster.create(plural, body)
    except ApiException as error:
        if error.status in (400, 422):  # the schema refused it: nothing for the operator
            case.rejected.append(plural)
            return None
        raise
    return str(body["metadata"]["name"])


def _listing(cluster: Cluster, plural: str) -> dict[str, Body]:
    items = cluster.custom.list_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, plural
    )["items"]
    return {item["metadata"]["name"]: item for item in items}


def _build_done(body: Body) -> bool:
    status = body.get("status") or {}
    return status.get("registered") in ("True", "False") and bool(status.get("reason"))


def _buildrun_done(body: Body) -> bool:
    status = body.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") == "Succeeded"]
    reason = conditions[0].get("reason") if conditions else None
    if status.get("completionTime"):
        return bool(reason)
    return _waits_for_its_scheduler(body) and reason == "Pending"


def _waits_for_its_scheduler(body: Body) -> bool:
    """A Pod for a scheduler this cluster does not run waits for it, as it would in any
    cluster, until the run's timeout: Pending is where such a run rests."""
    build_spec = (body.get("status") or {}).get("buildSpec") or {}
    return (build_spec.get("schedulerName") or "default-scheduler") != "default-scheduler"


def _shell_scripts(pod: Body) -> list[str]:
    scripts = []
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        scripts += [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-c"]
    return scripts


def _log_since(cluster: Cluster, offset: int) -> str:
    with cluster.operator.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _log_size(cluster: Cluster) -> int:
    return cluster.operator.log_path.stat().st_size


def check_batch(cluster: Cluster, batch: list[dict[str, Any]]) -> None:
    cases = []
    for bodies in batch:
        case = Case(shipped=bodies["shipped"])
        if "strategy" in bodies:
            case.strategy = _create(cluster, "buildstrategies", bodies["strategy"], case)
        case.build = _create(cluster, "builds", bodies["build"], case)
        case.buildrun = _create(cluster, "buildruns", bodies["buildrun"], case)
        cases.append(case)
    builds = {c.build for c in cases if c.build}
    runs = {c.buildrun for c in cases if c.buildrun}

    def still_open() -> dict[str, Any]:
        seen_builds = _listing(cluster, "builds")
        seen_runs = _listing(cluster, "buildruns")
        stuck = {b: seen_builds[b] for b in builds if not _build_done(seen_builds[b])}
        stuck |= {r: seen_runs[r] for r in runs if not _buildrun_done(seen_runs[r])}
        return stuck

    try:
        wait_until(lambda: not still_open(), timeout=DEADLINE_SECONDS, interval=0.2,
                   description="a named reason on every object")  # fmt: skip
    except TimeoutError:
        stuck = still_open()
        raise AssertionError(
            f"no named reason within {DEADLINE_SECONDS:.0f}s for {sorted(stuck)}:\n"
            + json.dumps(stuck, indent=1, default=str)[:6000]
            + f"\n{cluster.diagnostics()}"
        ) from None
    seen_builds = _listing(cluster, "builds")
    seen_runs = _listing(cluster, "buildruns")

    for name in runs:
        condition = next(c for c in seen_runs[name]["status"]["conditions"]
                         if c["type"] == "Succeeded")  # fmt: skip
        ended = bool(seen_runs[name]["status"].get("completionTime"))
        final = ("True", "False") if ended else ("Unknown",)  # Unknown: waits for its scheduler
        assert condition["reason"] and condition["status"] in final, condition
        OUTCOMES[condition["reason"]] += 1
    for name in builds:
        OUTCOMES["Build " + seen_builds[name]["status"]["reason"]] += 1
    for case in cases:
        for plural in case.rejected:
            OUTCOMES[f"refused by the apiserver: {plural}"] += 1

    pods = {p["metadata"]["name"]: p for p in cluster.pods()}
    for case in cases:
        pod = pods.get(f"{case.buildrun}-pod")
        if pod is None or not case.shipped:
            continue  # a generated strategy's script is the user's own to write
        for script in _shell_scripts(pod):
            assert MARK not in script, f"a parameter value in the script of {case.buildrun}"


@given(batch=st.lists(case_bodies(), min_size=BATCH, max_size=BATCH))
@settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=not RANDOM,
    print_blob=RANDOM,
    database=None,
    # No shrinking: a batch waits up to a minute, and the failure says which objects hung.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)  # fmt: skip
def test_every_accepted_object_ends_with_a_named_reason(
    cluster: Cluster, batch: list[dict[str, Any]]
) -> None:
    if not _has_push_secret(cluster):
        cluster.push_secret()
    offset = _log_size(cluster)
    check_batch(cluster, batch)
    assert cluster.operator.process is not None and cluster.operator.process.poll() is None, (
        "the operator exited:\n" + cluster.operator.log_tail(50)
    )
    log = _log_since(cluster, offset)
    for sign in ("Traceback", "failed with an exception", "KeyError"):
        assert sign not in log, f"{sign} in the operator's log:\n{log[-4000:]}"
    if os.environ.get("BUILDWRIGHT_PROPERTY_REPORT") == "1":
        print(json.dumps(OUTCOMES.most_common(), indent=0))
    # Every object has ended: nothing may still wait for a retry, and none fired since.
    ended = _log_size(cluster)
    wait_until(lambda: _retries_scheduled(cluster) == 0, timeout=30,
               description="no retries scheduled")  # fmt: skip
    late = [line for line in _log_since(cluster, ended).splitlines()
            if cluster.namespace in line and ("retrying in" in line or "refused" in line)]
    assert not late, late[-5:]


def _retries_scheduled(cluster: Cluster) -> float:
    code, body = cluster.operator.scrape()
    assert code == 200, body
    for line in body.splitlines():
        if line.startswith("buildwright_retries_scheduled "):
            return float(line.split()[1])
    raise AssertionError("buildwright_retries_scheduled is not exported")


def _has_push_secret(cluster: Cluster) -> bool:
    try:
        cluster.core.read_namespaced_secret("push-secret", cluster.namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
