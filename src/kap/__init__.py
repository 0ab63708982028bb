"""Kap: a self-hostable workspace for client implementation projects."""

__version__ = "0.1.0"
