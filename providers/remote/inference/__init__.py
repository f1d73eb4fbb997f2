"""Inference adapters to remote services (provider types remote::<name>)."""
