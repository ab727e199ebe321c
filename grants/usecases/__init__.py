"""The use cases, one module each, over one explicit dependencies object (deps.Deps)."""
