"""The use cases. The CLI, the GraphQL resolvers and the tests all go through these."""
