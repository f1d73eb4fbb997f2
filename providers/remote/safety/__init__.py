"""Remote safety providers."""
