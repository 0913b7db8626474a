"""`gateway demo` (what `make demo` runs): every vendor gets every expected record, and the report says so."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def test_demo_delivers_every_expected_record_to_every_vendor_despite_faults() -> None:
    """Its own broker, sandboxes, faults and poison messages: exit 0, nothing missing, the refusals dead-lettered."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "demo",
        "--events",
        "4000",
        "--rate",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 240)
    text = output.decode()
    assert process.returncode == 0, text[-3000:]
    assert "verified: every expected record reached its vendor" in text
    delivered = re.findall(r"delivered\s+(\d+) of (\d+) expected records", text)
    assert len(delivered) == 4, text[-3000:]  # unibo, enable3, userwise and intarget (read back from its feeds)
    for done, expected in delivered:
        assert int(expected) > 0
        assert done == expected
    assert "MISSING" not in text
    # The poison messages and the one record each vendor refuses went to the dead-letter topic with their reasons.
    assert len(re.findall(r"invalid_json=\d+", text)) >= 3
    assert len(re.findall(r"rejected=1\b", text)) >= 3
