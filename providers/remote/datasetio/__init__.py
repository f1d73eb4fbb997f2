"""Datasetio providers backed by remote services."""
