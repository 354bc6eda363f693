"""Programs that run inside the build Pod (git source, results, image push)."""
