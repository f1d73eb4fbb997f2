"""In-process inference providers."""
