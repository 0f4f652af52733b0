"""The web side: the survey page, one-click unsubscribe and the report, served by `cxctl serve`."""
