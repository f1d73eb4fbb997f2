"""Shared by the scoring providers: aggregations and the provider base class."""

from .aggregation import AGGREGATIONS, aggregate
from .base import BuiltinFunction, Rows, ScoringProvider, compile_regexes, first_group

__all__ = ["AGGREGATIONS", "BuiltinFunction", "Rows", "ScoringProvider", "aggregate", "compile_regexes", "first_group"]
