"""Importing this module registers every command family with commands/registry.py."""

from commands import export, help, incident  # noqa: F401
