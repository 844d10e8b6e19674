"""recipes/cut."""
