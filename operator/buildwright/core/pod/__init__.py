"""The build Pod of a BuildRun, rendered from the BuildRun, its Build, the strategy and the
service account (docs/build-pod.md describes the result).

- `render`: `render_pod`, the whole translation, and the order in which the parts are put
  together;
- `containers`: the inputs, the rendering context and what every step container shares
  (security context, mounts, the phase prefixes of TaskRunGenerationFailed messages);
- `source`: the source step (Git, OCI artifact or local upload);
- `strategy`: the strategy's steps with parameters, env, resources and volumes applied;
- `output`: the image-processing step (push, labels, annotations, timestamp, scan);
- `sequence`: the `prepare` init container and the entrypoint arguments that run the steps
  in order, and their reading back (`sequenced_step`);
- `metadata`: the Pod's name, labels, annotations, owner and generated service account;
- `volumes`: the Pod's own volumes and the Secrets and ConfigMaps they need.

The names the Pod shares with the status reader and the steps are `core.contract`'s.
"""

from buildwright.core.pod.containers import FORBIDDEN_ENV_VAR_NAMES, PodInputs
from buildwright.core.pod.metadata import (
    buildrun_owner_reference,
    generated_service_account,
    pod_name,
)
from buildwright.core.pod.render import render_pod
from buildwright.core.pod.sequence import SequencedStep, sequenced_step
from buildwright.core.pod.source import source_secret_of
from buildwright.core.pod.strategy import is_forbidden_env_name
from buildwright.core.pod.volumes import required_volume_objects, secret_volume_name

__all__ = [
    "FORBIDDEN_ENV_VAR_NAMES",
    "PodInputs",
    "SequencedStep",
    "buildrun_owner_reference",
    "generated_service_account",
    "is_forbidden_env_name",
    "pod_name",
    "render_pod",
    "required_volume_objects",
    "secret_volume_name",
    "sequenced_step",
    "source_secret_of",
]
