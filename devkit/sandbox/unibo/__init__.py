"""The Unibo sandbox: a real aiohttp server that checks what Unibo documents, with a control API."""
