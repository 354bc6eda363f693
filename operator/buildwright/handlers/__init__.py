"""kopf entry points: read, call the core, write."""
