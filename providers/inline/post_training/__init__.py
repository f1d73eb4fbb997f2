"""In-process post-training providers."""
