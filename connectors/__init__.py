"""Built-in vendor connectors: each folder supplies config models, a pure mapping and a client."""
