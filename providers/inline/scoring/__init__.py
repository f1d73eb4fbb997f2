"""Scoring providers that run in the server process."""
