"""Test beds shared by the test suite, the benchmarks and `gateway demo`: embedded broker, traffic, contracts."""
