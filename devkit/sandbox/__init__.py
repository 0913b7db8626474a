"""Local vendor sandboxes: real aiohttp servers that check what each vendor documents and inject faults on request."""
