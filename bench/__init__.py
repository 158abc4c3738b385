"""`make bench`: Winkit's benchmark harness (see bench/__main__.py and docs/benchmarks.md)."""
