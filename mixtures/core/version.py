"""The package's version (one place: ``pyproject.toml`` reads it, result files record it)."""

VERSION = "0.2.0"
