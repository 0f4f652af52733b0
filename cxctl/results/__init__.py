"""What people answered: export formats, the responses import, scorecards, follow-ups, reasons, verbatims, ops."""
