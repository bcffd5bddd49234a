"""The domain: models, enums, lifecycle rules and errors. Pure: no I/O, no GraphQL."""
