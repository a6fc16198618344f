"""Test fixtures that ship with cadenza: the loopback media server the tests, benchmarks and demo fetch from."""
