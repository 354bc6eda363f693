"""Pure decisions: no I/O, no kopf, no API client. Everything hard lives here."""
