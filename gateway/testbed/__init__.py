"""Test beds for the test suite and `gateway demo`: the embedded Tansu Kafka broker (vendor sandboxes live apart)."""
