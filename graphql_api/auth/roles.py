"""Roles and the one table of which role each mutation needs.

Roles are ordered: each may do everything the roles before it may. A mutation missing from the
table needs ``admin`` (fail closed), and a test checks that every mutation is listed.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # queries and subscriptions
    WORKER = "worker"  # + progress of the jobs it runs
    OPERATOR = "operator"  # + every job and registry mutation
    ADMIN = "admin"  # + whatever is added for administrators

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


#: Root mutation field (as in the schema) -> the least role that may call it.
MUTATION_ROLES: dict[str, Role] = {
    "registerModelVersion": Role.OPERATOR,
    "promoteModelVersion": Role.OPERATOR,
    "archiveModelVersion": Role.OPERATOR,
    "updateModelVersionMetrics": Role.OPERATOR,
    "updateModelVersion": Role.OPERATOR,
    "setModelAlias": Role.OPERATOR,
    "deleteModelAlias": Role.OPERATOR,
    "rollbackModelVersion": Role.OPERATOR,
    "createTrainingJob": Role.OPERATOR,
    "cancelTrainingJob": Role.OPERATOR,
    "startTrainingJob": Role.WORKER,
    "reportTrainingMetrics": Role.WORKER,
    "completeTrainingJob": Role.WORKER,
    "failTrainingJob": Role.WORKER,
    "setTrainingJobLogsUrl": Role.WORKER,
}

#: Queries and subscriptions: any valid key.
READ_ROLE = Role.VIEWER


def required_role(operation: str, field: str) -> Role:
    """The least role that may resolve root ``field`` of an ``operation`` (query, mutation,
    subscription)."""
    if operation == "mutation":
        return MUTATION_ROLES.get(field, Role.ADMIN)
    return READ_ROLE
