"""Helpers shared by tests (imported, never conftest files): fakes, spec checks, databases."""
