"""The measurement programme as YAML: the model, loading with marks, cross-checks, schema, init."""
