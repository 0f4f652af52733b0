"""The typer app: one thin module per command group, the demo and the CLI reference generator."""
