"""In-process tool runtime providers."""
