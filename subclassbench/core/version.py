"""The package version, recorded in every result file (kept apart so that recording it imports nothing)."""

__version__ = "0.1.0"
