"""Strawberry types generated from the domain models, and the mappers between them."""
