"""Thin GraphQL resolvers: unpack the arguments, call one service method, map the result."""
