"""The devkit (the `demo` extra): embedded broker, vendor sandboxes, traffic, the demo; the runtime never imports it."""
