"""InTarget pulls, so its stand-in is a reader: a poller of closed feed windows, as InTarget reads them."""
