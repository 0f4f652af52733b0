"""Shared leaves: errors, time, durations, output, resources, addresses, tokens. They import nothing else of cxctl."""
