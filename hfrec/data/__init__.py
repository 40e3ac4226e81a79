"""Benchmarks for sequential recommendation, prepared by the shared protocol (docs/CONTRACTS.md)."""

from .builder import (
    GENERIC,
    RecBenchmarkBuilder,
    RecBenchmarkConfig,
    RecDatasetDict,
    check_benchmark_name,
    load_benchmark,
    load_items,
    load_reviews,
    training_sequences,
)
from .processing import TIME_ORDERS, CorruptDataError
from .sources import BENCHMARKS, DataSourceError, hfrec_cache_dir

__all__ = [
    "BENCHMARKS", "GENERIC", "CorruptDataError", "DataSourceError", "RecBenchmarkBuilder", "RecBenchmarkConfig",
    "RecDatasetDict", "TIME_ORDERS", "check_benchmark_name", "hfrec_cache_dir", "load_benchmark", "load_items",
    "load_reviews", "training_sequences",
]
