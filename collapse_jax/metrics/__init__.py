"""Metric writers, progress reporting and metric aggregation."""
