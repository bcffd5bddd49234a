"""Who may do what: the ordered roles an API key grants.

In the domain because the lifecycle table (``domain.lifecycle``) names the role each change
needs; ``auth.roles`` turns that into the per-mutation table the transport checks.
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
