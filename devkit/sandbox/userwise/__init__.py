"""The UserWise sandbox: a real aiohttp server that checks what UserWise documents, with a control API."""
