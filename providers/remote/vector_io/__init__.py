"""Vector IO providers that use a database service."""
