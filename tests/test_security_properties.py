"""Property-based: random sequences of lifecycle mutations, by random roles (or no valid key),
and random JSON thrown at the API.

After every step: nothing reached the client as an unmasked (or any internal) error, every
refused request left the stored data exactly as it was, and the stored state obeys the
lifecycle rules (each status reached by an allowed transition, dates set, one production
version per model name, every change attributed to the key that made it).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_api.auth.roles import MUTATION_ROLES, OTHER_MUTATION_ROLES, Role
from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.lifecycle import can_model_transition, can_train_transition
from graphql_api.storage.mongo import MongoStorage
from tests import operations as ops
from tests import registry_operations as registry_ops
from tests.security_helpers import KEY_NAMES, SECRETS, client, secured_app, snapshot

REFUSALS = {
    "ForbiddenError",
    "UnauthenticatedError",
    "NotFoundError",
    "InvalidTransitionError",
    "ConflictError",
    "ValidationError",
}
MODEL_NAMES = ["churn", "fraud"]
IDS = [f"id-{n}" for n in range(3)]

# A JSON value as a client may send it: keys MongoDB would read as operators or paths,
# deep nesting, big and non-finite-looking numbers, long strings.
keys = st.one_of(
    st.sampled_from(["$gt", "$where", "a.b", ".", "$", "ok", "x" * 200, "", "\x00k"]),
    st.text(max_size=12),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=30,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"n": value}
    return value


hostile_objects = st.one_of(json_objects, st.integers(1, 12).map(deep))

roles = st.sampled_from([*Role, None, "bogus"])


#: The mutations of models and jobs (key management has its own tests: test_keys_*.py).
LIFECYCLE_MUTATIONS = sorted(
    # Not key and webhook management (admin only: tests/test_keys_stored.py and
    # tests/test_webhooks_roles.py).
    set(MUTATION_ROLES) - {"createApiKey", "revokeApiKey"} - set(OTHER_MUTATION_ROLES)
)


def step_strategy() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(
        roles,
        st.sampled_from(LIFECYCLE_MUTATIONS),
        st.sampled_from(IDS),
        st.sampled_from(MODEL_NAMES),
        hostile_objects,
    )


def headers_for(role: Role | str | None) -> dict[str, str]:
    if role is None:
        return {}
    if role == "bogus":
        return {"Authorization": "Bearer mlt_" + "A" * 43}
    assert isinstance(role, Role)
    return {"Authorization": f"Bearer {SECRETS[role]}"}


def request_for(field: str, target: str, name: str, blob: Any) -> tuple[str, dict[str, Any]]:
    model_id, job_id = f"m-{target}", f"j-{target}"
    match field:
        case "registerModelVersion":
            version = f"1.{uuid.uuid4().int % 3}.0"
            return ops.REGISTER, {
                "input": {
                    "modelName": name,
                    "version": version,
                    "modelType": "PREDICTION",
                    "modelId": model_id,
                    "metrics": blob,
                }
            }
        case "promoteModelVersion":
            return ops.PROMOTE, {"id": model_id}
        case "archiveModelVersion":
            return ops.ARCHIVE, {"id": model_id}
        case "updateModelVersionMetrics":
            return ops.UPDATE_MODEL_METRICS, {"id": model_id, "metrics": blob}
        case "createTrainingJob":
            return ops.CREATE_JOB, {
                "input": {
                    "modelId": model_id,
                    "datasetId": "d",
                    "jobId": job_id,
                    "hyperparameters": blob,
                }
            }
        case "startTrainingJob":
            return ops.START, {"id": job_id}
        case "cancelTrainingJob":
            return ops.CANCEL, {"id": job_id}
        case "completeTrainingJob":
            return ops.COMPLETE, {"id": job_id, "metrics": blob}
        case "failTrainingJob":
            return ops.FAIL, {"id": job_id, "reason": str(blob)[:100]}
        case "reportTrainingMetrics":
            return ops.REPORT, {"id": job_id, "metrics": blob}
        case "setTrainingJobLogsUrl":
            return ops.SET_LOGS, {"id": job_id, "url": "s3://logs/" + target}
        # Workers (docs/workers.md): a claim from the default queue, a stale token's writes.
        case "claimTrainingJob":
            return ops.CLAIM, {"queue": "default", "worker": f"w-{target}"}
        case "heartbeatTrainingJob":
            return ops.HEARTBEAT, {"id": job_id, "token": str(blob)[:50]}
        case "acknowledgeTrainingJobCancel":
            return ops.ACKNOWLEDGE_CANCEL, {"id": job_id, "token": None}
        case "retryTrainingJob":
            return ops.RETRY, {"id": job_id}
        case "updateModelVersion":
            return registry_ops.UPDATE_VERSION, {"id": model_id, "description": str(blob)[:50]}
        case "setModelAlias":
            alias = {"name": name, "alias": "champion", "id": model_id, "expected": None}
            return registry_ops.SET_ALIAS, alias
        case "deleteModelAlias":
            return registry_ops.DELETE_ALIAS, {"name": name, "alias": "champion", "expected": None}
        case "rollbackModelVersion":
            reason = str(blob)[:100]
            return registry_ops.ROLLBACK, {"name": name, "to": model_id, "reason": reason}
    raise AssertionError(field)


def assert_no_internal_error(body: dict[str, Any]) -> None:
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL_SERVER_ERROR" and error["message"] != "Unexpected error.", body


async def check_lifecycle(storage: MongoStorage) -> None:
    """The stored state, and the history that led to it, obey the lifecycle rules."""
    production: dict[str, int] = {}
    for target in IDS:
        model = await storage.model_versions.get(f"m-{target}")
        if model is not None:
            if model.status is ModelStatus.PRODUCTION:
                production[model.model_name] = production.get(model.model_name, 0) + 1
                assert model.deployed_date is not None
            await check_history(
                storage,
                model.model_id,
                model.status,
                can_model_transition,
                ModelStatus,
                ModelStatus.DEVELOPMENT,
            )
        job = await storage.training_jobs.get(f"j-{target}")
        if job is not None:
            final = {TrainingStatus.COMPLETED, TrainingStatus.FAILED, TrainingStatus.CANCELLED}
            if job.status is TrainingStatus.PENDING:
                assert job.started_date is None
            elif job.status is not TrainingStatus.CANCELLED:  # cancelled: either way
                assert job.started_date is not None
            assert (job.completed_date is not None) == (job.status in final)
            assert (job.failure_reason is not None) == (job.status is TrainingStatus.FAILED)
            await check_history(
                storage,
                job.job_id,
                job.status,
                can_train_transition,
                TrainingStatus,
                TrainingStatus.PENDING,
            )
    assert all(count <= 1 for count in production.values()), production


async def check_history(
    storage: MongoStorage, entity_id: str, current: Any, allowed: Any, enum: Any, first: Any
) -> None:
    events = await storage.events.for_entity(entity_id, 1000)
    assert events and events[0].previous_status is None and enum(events[0].status) is first
    status = first
    for event in events[1:]:
        assert event.actor in KEY_NAMES.values()  # every change names the key that made it
        new = enum(event.status)
        if new is not status:
            assert allowed(status, new), (entity_id, status, new)
        status = new
    assert status is current


async def run_steps(steps: list[tuple[Any, ...]]) -> None:
    storage = MongoStorage.connect(None, f"mltrain_prop_{uuid.uuid4().hex[:12]}")
    await storage.ensure_indexes()
    async with secured_app(storage) as app, client(app) as http:
        for role, field, target, name, blob in steps:
            document, variables = request_for(field, target, name, blob)
            before = await snapshot(storage)
            response = await http.post(
                "/graphql",
                json={"query": document, "variables": variables},
                headers=headers_for(role),
            )
            await check_response(response, role, field, storage, before)
        await check_lifecycle(storage)
    await storage.close()


async def check_response(
    response: httpx.Response, role: Any, field: str, storage: MongoStorage, before: Any
) -> None:
    if not isinstance(role, Role):
        assert response.status_code == 401, response.text
        assert await snapshot(storage) == before
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert_no_internal_error(body)
    result = (body.get("data") or {}).get(field)
    if result is None or result["__typename"] in REFUSALS:
        # A refusal: a typed error, or a GraphQL error (e.g. a JSON value the scalar rejects).
        assert await snapshot(storage) == before, (field, role, body)
    if not role.includes(MUTATION_ROLES[field]):
        assert result is not None and result["__typename"] == "ForbiddenError", body


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step_strategy(), min_size=1, max_size=25))
def test_random_lifecycle_sequences_keep_the_rules(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(run_steps(steps))


def _admin_sequences() -> st.SearchStrategy[list[tuple[Any, ...]]]:
    # Mostly admin: random roles refuse most steps, so this drives deep into the lifecycle.
    admin_step = st.tuples(
        st.just(Role.ADMIN),
        st.sampled_from(LIFECYCLE_MUTATIONS),
        st.sampled_from(IDS),
        st.sampled_from(MODEL_NAMES),
        st.one_of(st.just({"loss": 0.5}), hostile_objects),
    )
    return st.lists(admin_step, min_size=5, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_admin_sequences())
def test_random_lifecycle_sequences_by_an_admin_keep_the_rules(
    steps: list[tuple[Any, ...]],
) -> None:
    asyncio.run(run_steps(steps))


async def store_json(blob: Any) -> None:
    storage = MongoStorage.connect(None, f"mltrain_prop_{uuid.uuid4().hex[:12]}")
    await storage.ensure_indexes()
    async with secured_app(storage) as app, client(app) as http:
        admin = {"Authorization": f"Bearer {SECRETS[Role.ADMIN]}"}
        setup: list[tuple[str, dict[str, Any]]] = [
            ("registerModelVersion", {}),
            ("createTrainingJob", {}),
            ("startTrainingJob", {}),
        ]
        for field, blob_override in setup:
            document, variables = request_for(field, "id-0", "churn", blob_override)
            await http.post(
                "/graphql", json={"query": document, "variables": variables}, headers=admin
            )
        for field in [
            "createTrainingJob",
            "reportTrainingMetrics",
            "updateModelVersionMetrics",
            "registerModelVersion",
        ]:
            target = "id-1" if field in {"createTrainingJob", "registerModelVersion"} else "id-0"
            if field == "createTrainingJob":
                target = "id-0"  # exists already: hyperparameters checked before the conflict
            document, variables = request_for(field, target, "churn", blob)
            before = await snapshot(storage)
            response = await http.post(
                "/graphql", json={"query": document, "variables": variables}, headers=admin
            )
            body = response.json()
            assert response.status_code == 200
            assert_no_internal_error(body)
            result = (body.get("data") or {}).get(field)
            if result is None or result["__typename"] in REFUSALS:
                assert await snapshot(storage) == before
        for documents in (await snapshot(storage)).values():
            assert_storable(documents)
    await storage.close()


def assert_storable(value: Any) -> None:
    """No stored key could be read by MongoDB as an operator or a path."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert not key.startswith("$") and "." not in key, key
            assert_storable(item)
    elif isinstance(value, list):
        for item in value:
            assert_storable(item)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(hostile_objects, json_values))
def test_random_json_is_stored_safely_or_refused_cleanly(blob: Any) -> None:
    asyncio.run(store_json(blob))
