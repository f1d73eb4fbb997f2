"""In-process datasetio providers."""
