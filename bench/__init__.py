"""Benchmarks for Qifu's engine. Not tests: run ``python -m bench.engine_bench`` and read the report."""
