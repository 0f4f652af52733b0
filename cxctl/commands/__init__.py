"""CLI commands, one module per area; each exposes `register(app)`. Commands parse, call one core
function and render what it returns."""
