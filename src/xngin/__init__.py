"""xngin: an experimentation engine for participants who live in a data warehouse."""

__version__ = "0.1.0"
