"""The one table of which role each mutation needs, as the transport checks it.

Roles are ordered: each may do everything the roles before it may. The role of every lifecycle
change comes from its row in ``domain.lifecycle``; a mutation missing from the table needs
``admin`` (fail closed), and a test checks that every mutation is listed.
"""

from __future__ import annotations

from graphql_api.domain.lifecycle import mutation_roles
from graphql_api.domain.roles import Role

__all__ = ["MUTATION_ROLES", "OTHER_MUTATION_ROLES", "READ_ROLE", "Role", "required_role"]

#: Mutations that are no lifecycle change of a record, and the least role for each.
OTHER_MUTATION_ROLES: dict[str, Role] = {
    "createApiKey": Role.ADMIN,
    "revokeApiKey": Role.ADMIN,
}

#: Root mutation field (as in the schema) -> the least role that may call it.
MUTATION_ROLES: dict[str, Role] = {**mutation_roles(), **OTHER_MUTATION_ROLES}

#: Queries and subscriptions: any valid key, but for these.
READ_ROLE = Role.VIEWER
QUERY_ROLES: dict[str, Role] = {"apiKeys": Role.ADMIN}


def required_role(operation: str, field: str) -> Role:
    """The least role that may resolve root ``field`` of an ``operation`` (query, mutation,
    subscription)."""
    if operation == "mutation":
        return MUTATION_ROLES.get(field, Role.ADMIN)
    return QUERY_ROLES.get(field, READ_ROLE)
