"""Sending: templates, MIME, signed links, transports, the send run and its lock."""
