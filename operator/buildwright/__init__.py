"""buildwright: the Shipwright Build API as a kopf operator, one Pod per BuildRun."""

__version__ = "0.1.0"
