"""Who can be asked: CSV reading, CRM presets and mappings, contacts, events, suppressions."""
