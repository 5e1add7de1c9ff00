"""Registry services: the rules live here; controllers and the CLI stay thin."""
