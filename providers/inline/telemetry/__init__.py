"""In-process telemetry providers."""
