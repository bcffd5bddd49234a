"""Webhooks are admin only: other roles and keys limited to model names are refused (typed
errors for mutations, a FORBIDDEN error for the list), and nothing is created."""

from __future__ import annotations

import uuid

import pytest

from graphql_api.auth.roles import Role
from graphql_api.storage.mongo import MongoStorage
from tests.security_helpers import RoleClient, client, secured_app

CREATE = """mutation($url: String!) { createWebhook(url: $url) {
  __typename ... on CreatedWebhook { webhook { id } } ... on ForbiddenError { requiredRole } } }"""
LIST = "query { webhooks { id url } }"
#: Every webhook mutation, with arguments that would be valid.
MUTATIONS = {
    "createWebhook": CREATE,
    "updateWebhook": """mutation($id: ID!) { updateWebhook(id: $id, url: "http://127.0.0.1:9/y")
      { __typename ... on ForbiddenError { requiredRole } } }""",
    "deleteWebhook": """mutation($id: ID!) { deleteWebhook(id: $id)
      { __typename ... on ForbiddenError { requiredRole } } }""",
    "testWebhook": """mutation($id: ID!) { testWebhook(id: $id)
      { __typename ... on ForbiddenError { requiredRole } } }""",
    "redeliverWebhookDelivery": """mutation($id: ID!) { redeliverWebhookDelivery(id: $id)
      { __typename ... on ForbiddenError { requiredRole } } }""",
    "replayWebhook": """mutation($id: ID!) { replayWebhook(id: $id, after: "x")
      { __typename ... on ForbiddenError { requiredRole } } }""",
}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
async def test_only_admins_manage_webhooks(storage: MongoStorage, role: Role) -> None:
    async with secured_app(storage, webhook_allow_private=True) as app, client(app) as http:
        roles = RoleClient(http)
        made = await roles.data(Role.ADMIN, CREATE, url="http://127.0.0.1:9/x")
        webhook_id = made["createWebhook"]["webhook"]["id"]
        for field, document in MUTATIONS.items():
            variables = {"url": "http://127.0.0.1:9/x", "id": webhook_id}
            if field != "createWebhook":
                variables.pop("url")
            else:
                variables.pop("id")
            refused = (await roles.post(role, document, **variables)).json()
            assert refused["data"][field] == {
                "__typename": "ForbiddenError",
                "requiredRole": "admin",
            }, refused
        listed = (await roles.post(role, LIST)).json()
        assert listed["data"] is None or listed["data"]["webhooks"] is None
        assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        stored = (await roles.data(Role.ADMIN, "query { webhooks { id url } }"))["webhooks"]
        assert stored == [{"id": webhook_id, "url": "http://127.0.0.1:9/x"}]


async def test_a_scoped_admin_key_is_refused(storage: MongoStorage) -> None:
    async with secured_app(storage, webhook_allow_private=True) as app, client(app) as http:
        roles = RoleClient(http)
        made = await roles.data(
            Role.ADMIN,
            """mutation($name: String!) { createApiKey(name: $name, role: ADMIN,
                 modelNames: ["churn-*"]) { ... on CreatedApiKey { secret } } }""",
            name=f"k{uuid.uuid4().hex[:8]}",
        )
        secret = made["createApiKey"]["secret"]
        headers = {"Authorization": f"Bearer {secret}"}
        for query in (CREATE, LIST):
            body = (
                await http.post(
                    "/graphql",
                    json={"query": query, "variables": {"url": "http://127.0.0.1:9/x"}},
                    headers=headers,
                )
            ).json()
            if query is CREATE:
                assert body["data"]["createWebhook"]["__typename"] == "ForbiddenError", body
            else:
                assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
        assert (await roles.data(Role.ADMIN, LIST))["webhooks"] == []
