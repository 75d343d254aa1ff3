"""Pluggable models behind small protocols (scheduler policies, ...) and their registry."""
