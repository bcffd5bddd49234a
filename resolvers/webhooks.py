"""Admin: webhooks (docs/webhooks.md). The role table requires ``admin`` for every field here;
a key limited to model names is refused (a webhook sees every model's changes)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graphql_api.context import Info
from graphql_api.domain.errors import DomainError, ForbiddenError
from graphql_api.types import typed
from graphql_api.types.enums import ChangeKind, TrainingStatus
from graphql_api.types.errors import MutationError, to_graphql
from graphql_api.types.webhooks import (
    CreatedWebhook,
    CreateWebhookResult,
    DeleteWebhookResult,
    RedeliverWebhookDeliveryResult,
    ReplayWebhookResult,
    TestWebhookResult,
    UpdateWebhookResult,
    Webhook,
    WebhookDelivery,
)


class ScopedWebhookError(ForbiddenError):
    def __init__(self, operation: str) -> None:
        super().__init__(operation, "admin", "admin")
        self.message = (
            f"a key limited to model names may not call {operation}: a webhook is told of "
            "every model's changes; use an unlimited admin key"
        )
        self.args = (self.message,)


def _refuse_scoped(info: Info, operation: str) -> None:
    key = info.context.api_key
    if key is not None and not key.scope.unrestricted:
        raise ScopedWebhookError(operation)


URL_HELP = (
    "http(s) URL the changes are posted to. Its host must resolve to public addresses only "
    "(loopback, private and link-local ranges are refused unless "
    "MLTRAIN_WEBHOOK_ALLOW_PRIVATE=true)."
)


@strawberry.type
class WebhookQuery:
    @typed.field(
        description="Every webhook (at most 100), oldest first; admin only. Never the secrets.",
        graphql_type=list[Webhook],
    )
    async def webhooks(self, info: Info) -> list[Webhook]:
        _refuse_scoped(info, "webhooks")
        return [Webhook.of(w) for w in await info.context.services.webhooks.all()]


@strawberry.type
class WebhookMutation:
    @typed.mutation(
        description="Create a webhook (admin): told of every change from now on that its "
        "filters take (all given must match). The signing secret is in the answer once. "
        "Errors: ValidationError (url: rules url, url_scheme, public_address, max_length; "
        "modelNames; max_items).",
        graphql_type=CreateWebhookResult,
    )
    async def create_webhook(
        self,
        info: Info,
        url: Annotated[str, strawberry.argument(description=URL_HELP)],
        events: Annotated[
            list[ChangeKind] | None,
            strawberry.argument(description="Kinds of change to send; null or empty: all."),
        ] = None,
        model_names: Annotated[
            list[str] | None,
            strawberry.argument(description="Only changes of these models; null or empty: all."),
        ] = None,
        job_statuses: Annotated[
            list[TrainingStatus] | None,
            strawberry.argument(
                description="Only job changes that leave the job in one of these (model "
                "version changes are then left out); null or empty: no such filter."
            ),
        ] = None,
    ) -> CreatedWebhook | MutationError:
        try:
            _refuse_scoped(info, "createWebhook")
            created = await info.context.services.webhooks.create(
                url, events or (), model_names or (), job_statuses or (), actor=info.context.actor
            )
        except DomainError as error:
            return to_graphql(error)
        return CreatedWebhook(secret=created.secret, webhook=Webhook.of(created.webhook))

    @typed.mutation(
        description="Change a webhook's URL or filters (admin); arguments left null stay as "
        "they are, an empty list clears a filter. Its delivering starts over from its cursor. "
        "Errors: NotFoundError (id), ValidationError (as createWebhook).",
        graphql_type=UpdateWebhookResult,
    )
    async def update_webhook(
        self,
        info: Info,
        id: strawberry.ID,
        url: Annotated[str | None, strawberry.argument(description=URL_HELP)] = None,
        events: list[ChangeKind] | None = None,
        model_names: list[str] | None = None,
        job_statuses: list[TrainingStatus] | None = None,
    ) -> Webhook | MutationError:
        try:
            _refuse_scoped(info, "updateWebhook")
            updated = await info.context.services.webhooks.update(
                str(id), url, events, model_names, job_statuses
            )
        except DomainError as error:
            return to_graphql(error)
        return Webhook.of(updated)

    @typed.mutation(
        description="Delete a webhook and its delivery log (admin). Errors: NotFoundError (id).",
        graphql_type=DeleteWebhookResult,
    )
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> Webhook | MutationError:
        try:
            _refuse_scoped(info, "deleteWebhook")
            deleted = await info.context.services.webhooks.delete(str(id))
        except DomainError as error:
            return to_graphql(error)
        return Webhook.of(deleted)

    @typed.mutation(
        description="Send a signed `webhook.test` message now (one attempt, no retries) and "
        "log it; the answer says how it went. Errors: NotFoundError (id).",
        graphql_type=TestWebhookResult,
    )
    async def test_webhook(self, info: Info, id: strawberry.ID) -> WebhookDelivery | MutationError:
        try:
            _refuse_scoped(info, "testWebhook")
            delivery = await info.context.services.webhooks.test(str(id))
        except DomainError as error:
            return to_graphql(error)
        return WebhookDelivery.of(delivery)

    @typed.mutation(
        description="Send a logged delivery again now (one attempt, same `webhook-id`): a "
        "dead-lettered one once the receiver is fixed. Errors: NotFoundError (id: no such "
        "delivery, or a test message), ValidationError (id, retention: its change is no "
        "longer in the change log).",
        graphql_type=RedeliverWebhookDeliveryResult,
    )
    async def redeliver_webhook_delivery(
        self, info: Info, id: strawberry.ID
    ) -> WebhookDelivery | MutationError:
        try:
            _refuse_scoped(info, "redeliverWebhookDelivery")
            delivery = await info.context.services.webhooks.redeliver(str(id))
        except DomainError as error:
            return to_graphql(error)
        return WebhookDelivery.of(delivery)

    @typed.mutation(
        description="Deliver again every change after `after` (a change log cursor: a "
        "payload's data.cursor, a delivery's eventCursor) that the filters take, in order. "
        "Errors: NotFoundError (id), ValidationError (after: cursor, retention).",
        graphql_type=ReplayWebhookResult,
    )
    async def replay_webhook(
        self, info: Info, id: strawberry.ID, after: str
    ) -> Webhook | MutationError:
        try:
            _refuse_scoped(info, "replayWebhook")
            replayed = await info.context.services.webhooks.replay(str(id), after)
        except DomainError as error:
            return to_graphql(error)
        return Webhook.of(replayed)
