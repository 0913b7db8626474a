"""The Enable3 sandbox: a real aiohttp server that checks what Enable3 documents, with a control API."""
