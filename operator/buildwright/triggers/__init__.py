"""`spec.trigger` acted on: the webhook receiver (`receiver`) and the image poller (`poller`).

Thin shells around `buildwright.core.triggers`: they read Builds from the operator's cache
and the Secrets they name, ask the core, and write BuildRuns, Build status and Events.
docs/triggers.md describes the URLs, payloads and guarantees.
"""
