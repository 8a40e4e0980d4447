"""crawler: a Python web crawler that keeps every page in a SQL database."""

__version__ = "0.1.0"
