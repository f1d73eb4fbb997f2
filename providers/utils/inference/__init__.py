"""Shared pieces of inference providers."""
