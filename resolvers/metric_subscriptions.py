"""The live metric series: ``trainingMetricUpdates`` (graphql_api/live/metric_feed.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated

import strawberry

from graphql_api.auth.scope import job_outside, key_scope
from graphql_api.context import Info
from graphql_api.live.metric_feed import metric_updates
from graphql_api.types import typed
from graphql_api.types.metric_series import TrainingMetricUpdateType


@strawberry.type
class MetricSubscription:
    @typed.subscription(
        description="New points of these jobs' metric series, coalesced: every point written "
        "since the previous message, at most two messages a second. Resumable with `after` "
        "(a message's cursor) with no gap and no duplicate; without it, points from now on. "
        "Ends once every job is COMPLETED, FAILED or CANCELLED and its points are delivered. "
        "Points are not change events: trainingJobUpdates does not carry them. "
        "docs/metrics.md.",
        graphql_type=TrainingMetricUpdateType,
    )
    async def training_metric_updates(
        self,
        info: Info,
        job_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="The jobs (1 to 100).")
        ],
        keys: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these keys (at most 100); all when omitted."),
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Resume right after this message's cursor: jobs it names resume "
                "from there, others from now."
            ),
        ] = None,
    ) -> AsyncGenerator[TrainingMetricUpdateType, None]:
        ids = [str(j) for j in job_ids]
        scope = key_scope(info.context)
        if scope is not None:
            for job_id in ids:
                outside = await job_outside(info.context, scope, job_id, "jobIds")
                if outside is not None:
                    raise outside
        updates = metric_updates(info.context.services.series, ids, keys, after)
        async with aclosing(updates):
            async for update in updates:
                yield TrainingMetricUpdateType.of(update)
