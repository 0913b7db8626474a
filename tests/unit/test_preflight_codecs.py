"""The codec line of `check-config --connect`: a codec the consumer cannot decode is a failed check."""

from __future__ import annotations

from gateway.preflight import CODECS, codec_check


def test_a_missing_codec_fails_with_what_to_install() -> None:
    """An unavailable codec is a FAIL line naming it and the package aiokafka needs; an available one is ok."""
    missing = codec_check("zstd", False)
    assert not missing.ok
    assert missing.line().startswith("FAIL  codec zstd: not installed")
    assert "cramjam" in missing.line()
    assert codec_check("gzip", True).line() == "ok    codec gzip: available"


def test_every_kafka_compression_is_checked() -> None:
    """gzip, snappy, lz4 and zstd (every compression a Kafka producer may choose) each get a line."""
    assert set(CODECS) == {"gzip", "snappy", "lz4", "zstd"}
