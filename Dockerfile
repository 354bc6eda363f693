# syntax=docker/dockerfile:1
# The buildwright image: the operator (`buildwright run`) and, in build Pods, the step
# programs (`buildwright-step git-source | bundle | waiter | image-processing | results`).
#   docker build -t ghcr.io/buildwright/buildwright:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG GO_IMAGE=golang:1.26-bookworm
# Tekton's step entrypoint, which every build Pod runs in front of each step's command to run
# the steps in order; keep in step with hack/build-entrypoint.sh.
ARG TEKTON_VERSION=v1.6.0

FROM ${GO_IMAGE} AS entrypoint
ARG TEKTON_VERSION
WORKDIR /src
# Static (no cgo) so that the same binary runs in the distroless and scratch images of
# strategy steps; SPIFFE/SPIRE result signing left out, as buildwright does not use it.
RUN go mod init buildwright.local/entrypoint \
 && go get "github.com/tektoncd/pipeline/cmd/entrypoint@${TEKTON_VERSION}" \
 && CGO_ENABLED=0 go build -trimpath -tags disable_spire -ldflags "-s -w" \
      -o /out/tekton-entrypoint github.com/tektoncd/pipeline/cmd/entrypoint

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The venv is copied whole into the final stage, so its interpreter symlinks must resolve
# there: both stages use the same base image and the same path.
RUN python -m venv /opt/buildwright
WORKDIR /src
COPY pyproject.toml ./
COPY operator ./operator
# Every dependency ships wheels for this platform, so nothing is compiled; pip itself is
# removed from the venv afterwards as it is not needed at run time.
RUN /opt/buildwright/bin/pip install . \
 && /opt/buildwright/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# git (and ssh for ssh:// sources) is what the git-source step runs; ca-certificates for
# HTTPS clones and registries. Versions follow the pinned Debian release of the base image.
# `shp build upload` runs a bare `waiter done` and `tar` in the source-local container.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip uninstall --yes pip setuptools wheel \
 && printf '#!/bin/sh\nexec buildwright-step waiter "$@"\n' >/usr/local/bin/waiter \
 && chmod 0755 /usr/local/bin/waiter \
 && groupadd --gid 65532 buildwright \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin buildwright
COPY --from=builder /opt/buildwright /opt/buildwright
# The `prepare` init container of a build Pod copies this binary into the Pod's
# /tekton/bin (core/pod.py: ENTRYPOINT_IN_STEP_IMAGE).
COPY --from=entrypoint /out/tekton-entrypoint /usr/local/bin/tekton-entrypoint
# PYTHONMALLOC=malloc: objects in glibc's heap, whose freed pages the operator returns every
# 10 s; CPython's own arenas stay pinned by a few survivors after a burst (bench/README.md:
# half the resident size after a 1,000-BuildRun burst, for more CPU per object).
ENV PATH=/opt/buildwright/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONMALLOC=malloc \
    HOME=/tmp
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8383 8443
ENTRYPOINT ["buildwright"]
# The Deployment runs `run` as well: metrics and probes on 8383, the webhook on 8443.
CMD ["run"]
