"""In-process safety providers."""
