"""`make bench`: side-by-side performance measurements (see docs/benchmarks.md)."""
