"""The package version, in one place (pyproject.toml reads the same number; a test compares them)."""

__version__ = "0.26.0"
