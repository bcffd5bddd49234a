"""Property: every field of every record a client writes or reads comes back as it went in.

For each domain model (``ModelVersion``, ``TrainingJob``, and the ``ChangeEvent`` that carries a
record's snapshot to history and subscriptions) the fields are enumerated from
``Model.model_fields``, and each must have a generator here (``*_FIELDS``): a field added to a
model without one fails ``test_every_model_field_has_a_generator``; a field that storage, the
GraphQL type or the event snapshot forgets fails the round trips below. Values come from the
domain's own limits (``domain.values``, ``domain.text``) and include their edges: max-length text
and keys, unicode, integers next to floats of the same value (``4`` and ``4.0``), 64-bit and
99-digit integers, datetimes with microseconds and offsets, empty maps, ``None`` optionals.

Comparisons are by type as well as value (``4 == 4.0`` in Python, not here). Each test reuses
one app and database for all its examples (the real server is slow to set up), so ids and
versions get a per-example suffix; examples are derandomized so CI always runs the same ones.
"""

from __future__ import annotations

import itertools
import string
import typing
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from graphql_api.domain import artifacts, text, values
from graphql_api.domain.enums import (
    FailureKind,
    JobHealth,
    ModelStatus,
    ModelType,
    TrainingStatus,
)
from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.live import records
from graphql_api.services.changes import IMMUTABLE_FIELDS, INTERNAL_FIELDS
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.documents import unwrap_annotation
from tests import operations as ops
from tests.conftest import GraphQLClient

EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: a failing example is reported as drawn (every value is printed), instead
    # of minutes of shrinking against the real server.
    phases=[Phase.explicit, Phase.generate],
    # One app and database serve every example of a test (see the module doc).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_unique = itertools.count(1)
M = TypeVar("M", bound=BaseModel)

# --- Values, from the domain's limits ----------------------------------------------------------

_VISIBLE = st.characters(categories=("L", "M", "N", "P", "S"))


def _accepted(check: Callable[[str], object]) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        try:
            check(value)
        except text.PolicyError:
            return False
        return True

    return accepts


def _valid(annotation: Any) -> Callable[[Any], bool]:
    """Accepted as new input by the domain's own type (``domain.values``)."""
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def accepts(value: Any) -> bool:
        try:
            adapter.validate_python(value, context=text.INPUT_CONTEXT)
        except PydanticValidationError:
            return False
        return True

    return accepts


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


names = st.one_of(
    st.lists(st.text(_VISIBLE, min_size=1, max_size=12), min_size=1, max_size=4)
    .map(" ".join)
    .map(_nfc)
    .filter(_accepted(text.check_name)),
    st.sampled_from(["x" * text.MAX_NAME_LENGTH, "é" * text.MAX_NAME_LENGTH, "名前 モデル 🙂"]),
)
keys = st.one_of(
    st.text(_VISIBLE.filter(lambda c: c != "."), min_size=1, max_size=12)
    .map(_nfc)
    .filter(_accepted(lambda key: text.check_key(key, "test"))),
    st.sampled_from(["k" * text.MAX_KEY_LENGTH, "accuracy", "ключ", "a b"]),
)
_ID_CHARS = string.ascii_letters + string.digits + "._:-"
identifiers = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(_ID_CHARS, max_size=127),
)
big_ints = st.sampled_from([values.MAX_INTEGER, -values.MAX_INTEGER, 2**53 + 1, 0])
numbers = st.one_of(
    st.integers(-values.MAX_INTEGER, values.MAX_INTEGER),
    big_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([4, 4.0, 0.0, -0.0, 1e308, 5e-324, 0.1]),
)
metrics: st.SearchStrategy[dict[str, int | float]] = st.one_of(
    st.just({}),
    st.dictionaries(keys, numbers, max_size=6).filter(_valid(values.Metrics)),
    st.just({"epoch": 4, "loss": 4.0, "k" * text.MAX_KEY_LENGTH: values.MAX_INTEGER}),
)
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=20),
    st.just("s" * values.MAX_STRING_LENGTH),
)
hyperparameters = st.one_of(
    st.just({}),
    st.dictionaries(
        keys,
        st.recursive(
            _json_scalars,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    ).filter(_valid(values.Hyperparameters)),
    st.just({"lr": 0.1, "epochs": 4, "nested": {"list": [1, 1.0, True, None, "x"], "empty": {}}}),
)
_OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
datetimes = st.datetimes(
    min_value=datetime(1900, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(_OFFSETS),
)
#: As the services make them (``values.utc_now``): UTC, to storage precision.
event_times = datetimes.map(lambda when: values.to_storage_precision(when.astimezone(UTC)))
urls = st.one_of(
    st.builds(
        "{}://{}/{}".format,
        st.sampled_from(sorted(text.URL_SCHEMES)),
        st.text(string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=30),
        st.text(st.characters(min_codepoint=ord("!"), max_codepoint=ord("~")), max_size=40),
    ).filter(_accepted(text.check_url)),
    st.just("s3://bucket/" + "a" * (text.MAX_URL_LENGTH - len("s3://bucket/"))),
)
free_texts = st.one_of(
    st.text(
        st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"))
        | st.sampled_from("\t\n\r"),
        min_size=1,
        max_size=40,
    ).filter(_accepted(text.check_text)),
    st.just("r" * text.MAX_TEXT_LENGTH),
)
#: SemVer with major 0 (``unique_version`` makes it unique per example: name + precedence
#: is unique), up to 99-digit numeric parts, pre-release and build metadata.
_SEMVER_PART = st.integers(0, 10**99 - 1).map(str)
_SEMVER_IDS = st.lists(st.from_regex(r"[0-9A-Za-z-]{1,8}", fullmatch=True), min_size=1, max_size=3)
versions = st.builds(
    lambda minor, patch, pre, build: f"0.{minor}.{patch}{pre}{build}",
    _SEMVER_PART,
    st.integers(0, 10**6).map(str),
    st.sampled_from(["", "-rc.1", "-alpha", "-0.3.7"]),
    st.just("") | _SEMVER_IDS.map(lambda ids: "+" + ".".join(ids)),
).filter(lambda version: len(version) <= 118)

artifact_uris = st.one_of(
    st.builds(
        "{}{}".format,
        st.sampled_from(["s3://bucket/", "gs://bucket/", "file:///models/", "https://host/"]),
        st.text(string.ascii_letters + string.digits + "._-/", min_size=1, max_size=40),
    ).filter(_accepted(artifacts.check_artifact_uri)),
    st.just("s3://bucket/" + "a" * (text.MAX_URL_LENGTH - len("s3://bucket/"))).filter(
        _accepted(artifacts.check_artifact_uri)
    ),
)
_tag_parts = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)
tags = st.lists(st.tuples(_tag_parts, _tag_parts), max_size=4, unique_by=lambda tag: tag[0]).map(
    lambda pairs: [{"key": key, "value": value} for key, value in pairs]
)

#: One generator per field of each model. A model field missing here fails the test below.
MODEL_VERSION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model_id": identifiers,
    "model_name": names,
    "version": versions,
    "model_type": st.sampled_from(ModelType),
    "status": st.sampled_from(ModelStatus),
    "metrics": metrics,
    "created_date": datetimes,
    "deployed_date": st.none() | datetimes,
    "artifact_uri": st.none() | artifact_uris,
    "artifact_digest": st.none() | st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
    "description": st.none() | free_texts,
    "tags": tags,
    "created_by": st.none() | names,
    "source_job_id": st.none() | identifiers,
}
TRAINING_JOB_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "job_id": identifiers,
    "model_id": identifiers,
    "status": st.sampled_from(TrainingStatus),
    "hyperparameters": hyperparameters,
    "dataset_id": names,
    "started_date": st.none() | datetimes,
    "completed_date": st.none() | datetimes,
    "metrics": metrics,
    "logs_url": st.none() | urls,
    "created_date": datetimes,
    "failure_reason": st.none() | free_texts,
    # Workers (docs/workers.md).
    "queue": identifiers,
    "worker_id": st.none() | identifiers,
    "lease_expires_at": st.none() | datetimes,
    "lease_seconds": st.none() | st.integers(1, 3600),
    "last_heartbeat_at": st.none() | datetimes,
    "health": st.sampled_from(JobHealth),
    "failure_kind": st.none() | st.sampled_from(FailureKind),
    "max_runtime_seconds": st.none() | st.integers(1, 30 * 86400),
    "retry_max_attempts": st.integers(1, 20),
    "retry_on": st.lists(st.sampled_from(FailureKind), unique=True, max_size=3),
    "retry_backoff_seconds": st.sampled_from([0.0, 0.5, 30.0, 86400.0]),
    "attempt": st.integers(1, 100),
    "retry_of": st.none() | identifiers,
    "retry_root": st.none() | identifiers,
    "retry_due_at": st.none() | datetimes,
    "retried_by": st.none() | identifiers,
    "failure_retryable": st.booleans(),
    "failure_exit_code": st.none() | st.integers(-255, 255),
    "cancel_requested_at": st.none() | datetimes,
    "cancel_deadline_at": st.none() | datetimes,
    "lease_token_hash": st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
}
CHANGE_EVENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.just(0),  # storage assigns it
    "entity": st.just(EntityKind.TRAINING_JOB),  # the snapshot below is a job's
    "entity_id": identifiers,
    "kind": st.sampled_from(ChangeKind),
    "previous_status": st.none() | st.sampled_from([s.value for s in TrainingStatus]),
    "status": st.sampled_from([s.value for s in TrainingStatus]),
    "occurred_at": event_times,
    "model_id": identifiers,
    "model_name": st.none() | names,
    "actor": st.none() | names,
    "snapshot": st.just({}),  # a job's snapshot, filled in by ``events_of_jobs``
    "event_id": st.none() | identifiers,
    "alias": st.none() | names,
    "previous_model_id": st.none() | identifiers,
    "reason": st.none() | free_texts,
}
GENERATORS: dict[type[BaseModel], dict[str, st.SearchStrategy[Any]]] = {
    ModelVersion: MODEL_VERSION_FIELDS,
    TrainingJob: TRAINING_JOB_FIELDS,
    ChangeEvent: CHANGE_EVENT_FIELDS,
}


def records_of(model: type[M]) -> st.SearchStrategy[M]:
    """Every field of ``model`` generated; a field without a generator is a KeyError here."""
    fields = GENERATORS[model]
    missing = sorted(set(model.model_fields) - set(fields))
    assert not missing, f"{model.__name__}: no generator for {missing}: add one to this module"
    return st.fixed_dictionaries({name: fields[name] for name in model.model_fields}).map(
        lambda data: model.model_validate(data, context=text.INPUT_CONTEXT)
    )


def unique_id(value: str) -> str:
    suffix = f"-{next(_unique)}"
    return value[: 128 - len(suffix)] + suffix


def unique_version(version: str) -> str:
    return f"{next(_unique)}.{version.split('.', 1)[1]}"


def unique_version_record(version: ModelVersion) -> ModelVersion:
    return version.model_copy(
        update={"model_id": unique_id(version.model_id), "version": unique_version(version.version)}
    )


# --- Comparing, by type and value --------------------------------------------------------------


def kind(value: Any) -> type:
    """The type a value has for a client: the driver reads a BSON int64 as ``bson.Int64``, an
    ``int`` that JSON writes as an integer, so it is an int here (a bool is not)."""
    if isinstance(value, int) and not isinstance(value, bool | Enum):
        return int
    return type(value)


def assert_same(got: Any, expected: Any, where: str) -> None:
    """Equal, and of the same JSON type all the way down (an int is not a float here)."""
    assert kind(got) is kind(expected), f"{where}: {got!r} came back for {expected!r}"
    if isinstance(expected, Mapping):
        assert list(got) == list(expected) or set(got) == set(expected), f"{where}: keys differ"
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), f"{where}: {got!r} came back for {expected!r}"
        for index, (item, wanted) in enumerate(zip(got, expected, strict=True)):
            assert_same(item, wanted, f"{where}[{index}]")
    elif isinstance(expected, float) and expected == 0:
        assert str(got) == str(expected), f"{where}: {got!r} came back for {expected!r}"
    else:
        assert got == expected, f"{where}: {got!r} came back for {expected!r}"


def assert_same_record(got: BaseModel | None, expected: BaseModel, where: str) -> None:
    assert got is not None, f"{where}: nothing came back"
    for name in type(expected).model_fields:
        assert_same(getattr(got, name), getattr(expected, name), f"{where}.{name}")


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _record_type(annotation: Any) -> type[BaseModel] | None:
    """The record a field holds (``Tag`` for ``list[Tag]``), if it holds records."""
    plain, _ = unwrap_annotation(annotation)
    if typing.get_origin(plain) is list:
        plain, _ = unwrap_annotation(typing.get_args(plain)[0])
    return plain if isinstance(plain, type) and issubclass(plain, BaseModel) else None


#: Stored fields GraphQL shows other than as a field of their own (still read back whole from
#: storage above): grouped under ``failure`` and ``retryPolicy`` (shown only when the job
#: failed / has a policy), the sweep's own bookkeeping, and the lease token's hash (never shown).
NOT_SHOWN_AS_FIELDS: dict[type[BaseModel], set[str]] = {
    TrainingJob: {
        "failure_kind",
        "failure_retryable",
        "failure_exit_code",
        "retry_max_attempts",
        "retry_on",
        "retry_backoff_seconds",
        "retry_root",
        "retry_due_at",
        "retried_by",
        "lease_seconds",
        "lease_token_hash",
    },
}


def shown_fields(model: type[BaseModel]) -> list[str]:
    hidden = NOT_SHOWN_AS_FIELDS.get(model, set())
    return [name for name in model.model_fields if name not in hidden]


def selection(model: type[BaseModel]) -> str:
    """Every field of the model, as GraphQL names it: a field the type lacks fails the query.
    A field holding records selects all of theirs."""
    parts = []
    for name in shown_fields(model):
        info = model.model_fields[name]
        inner = _record_type(info.annotation)
        parts.append(camel(name) if inner is None else f"{camel(name)} {{ {selection(inner)} }}")
    return " ".join(parts)


def _as_shown(value: Any) -> Any:
    """A record (or list of them) as GraphQL shows it: an object keyed by camelCase names."""
    if isinstance(value, BaseModel):
        return {camel(name): _as_shown(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [_as_shown(item) for item in value]
    return value


def assert_shown(shown: Mapping[str, Any], expected: BaseModel, where: str) -> None:
    """What GraphQL answered for ``expected``: enums by name, datetimes as ISO 8601."""
    for name in shown_fields(type(expected)):
        value = getattr(expected, name)
        got = shown[camel(name)]
        if isinstance(value, Enum):
            assert got == value.name, f"{where}.{name}: {got!r} for {value!r}"
        elif isinstance(value, datetime):
            assert datetime.fromisoformat(got) == value, f"{where}.{name}: {got!r} for {value!r}"
        else:
            assert_same(got, _as_shown(value), f"{where}.{name}")


# --- The generators know every field -----------------------------------------------------------


def test_every_model_field_has_a_generator() -> None:
    for model, fields in GENERATORS.items():
        missing = set(model.model_fields) - set(fields)
        assert not missing, f"{model.__name__}: no generator for {sorted(missing)}: add one here"
        assert set(fields) == set(model.model_fields), f"{model.__name__}: stale generators"


def as_stored(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as the log keeps it: enums (StrEnum) are stored, and read back, as values
    (also in lists: a job's ``retry_on``)."""

    def stored(value: Any) -> Any:
        if isinstance(value, list):
            return [stored(item) for item in value]
        return value.value if isinstance(value, Enum) else value

    return {key: stored(v) for key, v in snapshot.items()}


# --- Storage and GraphQL reads -----------------------------------------------------------------

VERSION_QUERY = f"query($id: ID!) {{ modelVersion(modelId: $id) {{ {selection(ModelVersion)} }} }}"
JOB_QUERY = f"query($id: ID!) {{ trainingJob(jobId: $id) {{ {selection(TrainingJob)} }} }}"
VERSIONS_PAGE = f"""query($ids: [ID!]) {{
  modelVersions(filter: {{modelIds: $ids}}) {{ edges {{ node {{ {selection(ModelVersion)} }} }} }}
}}"""
JOBS_PAGE = f"""query($ids: [ID!]) {{
  trainingJobs(filter: {{jobIds: $ids}}) {{ edges {{ node {{ {selection(TrainingJob)} }} }} }}
}}"""


@EXAMPLES
@given(version=records_of(ModelVersion))
async def test_a_stored_model_version_reads_back_whole(
    storage: MongoStorage, gql: GraphQLClient, version: ModelVersion
) -> None:
    version = unique_version_record(version)
    await storage.model_versions.insert(version)

    assert_same_record(await storage.model_versions.get(version.model_id), version, "get")
    many = await storage.model_versions.get_many([version.model_id])
    assert_same_record(many.get(version.model_id), version, "get_many")
    shown = (await gql.data(VERSION_QUERY, id=version.model_id))["modelVersion"]
    assert_shown(shown, version, "modelVersion")
    page = (await gql.data(VERSIONS_PAGE, ids=[version.model_id]))["modelVersions"]["edges"]
    assert_shown(page[0]["node"], version, "modelVersions")


@EXAMPLES
@given(job=records_of(TrainingJob))
async def test_a_stored_training_job_reads_back_whole(
    storage: MongoStorage, gql: GraphQLClient, job: TrainingJob
) -> None:
    job = job.model_copy(update={"job_id": unique_id(job.job_id)})
    await storage.training_jobs.insert(job)

    assert_same_record(await storage.training_jobs.get(job.job_id), job, "get")
    many = await storage.training_jobs.get_many([job.job_id])
    assert_same_record(many.get(job.job_id), job, "get_many")
    shown = (await gql.data(JOB_QUERY, id=job.job_id))["trainingJob"]
    assert_shown(shown, job, "trainingJob")
    page = (await gql.data(JOBS_PAGE, ids=[job.job_id]))["trainingJobs"]["edges"]
    assert_shown(page[0]["node"], job, "trainingJobs")


@EXAMPLES
@given(event=records_of(ChangeEvent), job=records_of(TrainingJob), version=records_of(ModelVersion))
async def test_a_logged_change_reads_back_whole_with_its_record(
    storage: MongoStorage, event: ChangeEvent, job: TrainingJob, version: ModelVersion
) -> None:
    """The event and the record it carries: history shows the one, subscriptions the other."""
    entity_id = unique_id(event.entity_id)
    event_id = None if event.event_id is None else unique_id(event.event_id)
    job = job.model_copy(update={"job_id": entity_id})
    for sent, snapshot in [
        (
            event,
            as_stored(job.model_dump(mode="python", exclude=IMMUTABLE_FIELDS | INTERNAL_FIELDS)),
        ),
        (
            event.model_copy(update={"entity": EntityKind.MODEL_VERSION}),
            as_stored(version.model_dump(mode="python")),
        ),
    ]:
        sent = sent.model_copy(
            update={"entity_id": entity_id, "event_id": event_id and unique_id(event_id)}
        ).model_copy(update={"snapshot": snapshot})
        stored = await storage.events.append(sent)
        expected = sent.model_copy(update={"seq": stored.seq})
        [read] = [e for e in await storage.events.for_entity(entity_id, 10) if e.seq == stored.seq]
        assert_same_record(read, expected, "for_entity")
        if sent.entity is EntityKind.TRAINING_JOB:
            # No event carries the lease token's hash (services.changes.INTERNAL_FIELDS).
            unfenced = job.model_copy(update={"lease_token_hash": None})
            assert_same_record(records.job_after(read, job.hyperparameters), unfenced, "job_after")
        else:
            assert_same_record(records.model_version_after(read), version, "version_after")


# --- Client writes -----------------------------------------------------------------------------

#: What a client can do to a version after registering it, as (mutation, extra variables).
VERSION_STEPS: st.SearchStrategy[list[tuple[str, dict[str, Any]]]] = st.lists(
    st.one_of(
        st.tuples(st.just(ops.PROMOTE), st.just({})),
        st.tuples(st.just(ops.ARCHIVE), st.just({})),
        st.tuples(st.just(ops.UPDATE_MODEL_METRICS), metrics.map(lambda m: {"metrics": m})),
    ),
    max_size=3,
)
JOB_STEPS = st.sampled_from(
    [
        [],
        [(ops.CANCEL, {})],
        [(ops.START, {})],
        [(ops.START, {}), (ops.REPORT, "metrics")],
        [(ops.START, {}), (ops.REPORT, "metrics"), (ops.COMPLETE, "metrics")],
        [(ops.START, {}), (ops.FAIL, "reason")],
        [(ops.SET_LOGS, "url"), (ops.START, {}), (ops.COMPLETE, {})],
    ]
)


def result_of(data: dict[str, Any]) -> dict[str, Any]:
    [result] = data.values()
    return dict(result)


def as_record(model: type[M], shown: Mapping[str, Any], hidden_from: M | None = None) -> M:
    """The model a GraphQL answer stands for (enums by name, as the schema spells them); the
    fields GraphQL does not show as fields (NOT_SHOWN_AS_FIELDS) taken from ``hidden_from``."""
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in NOT_SHOWN_AS_FIELDS.get(model, set()):
            data[name] = getattr(hidden_from, name)
            continue
        value = shown[camel(name)]
        annotation = field.annotation
        enum = annotation if isinstance(annotation, type) and issubclass(annotation, Enum) else None
        data[name] = enum[value] if enum is not None else value
    return model.model_validate(data)


def whole_jobs(document: str) -> str:
    """``document`` answering every field of the jobs it returns, not the usual few."""
    assert ops.JOB_FIELDS in document
    return document.replace(ops.JOB_FIELDS, selection(TrainingJob))


def whole_versions(document: str) -> str:
    """``document`` answering every field of the versions it returns, not the usual few."""
    assert ops.MODEL_FIELDS in document
    return document.replace(ops.MODEL_FIELDS, selection(ModelVersion))


@EXAMPLES
@given(version=records_of(ModelVersion), steps=VERSION_STEPS)
async def test_a_registered_model_version_reads_back_as_written(
    storage: MongoStorage,
    gql: GraphQLClient,
    version: ModelVersion,
    steps: list[tuple[str, dict[str, Any]]],
) -> None:
    version = unique_version_record(version)
    sent = {
        "modelId": version.model_id,
        "modelName": version.model_name,
        "version": version.version,
        "modelType": version.model_type.name,
        "metrics": version.metrics,
        "artifactUri": version.artifact_uri,
        "artifactDigest": version.artifact_digest,
        "description": version.description,
        "tags": _as_shown(version.tags),
    }
    result = result_of(await gql.data(whole_versions(ops.REGISTER), input=sent))
    assert result["__typename"] == "ModelVersion", result
    for key, value in sent.items():
        assert_same(result[key], value, f"registerModelVersion.{key}")
    for document, variables in steps:
        answer = result_of(
            await gql.data(whole_versions(document), id=version.model_id, **variables)
        )
        if answer["__typename"] == "ModelVersion":
            result = answer
    written = as_record(ModelVersion, result)

    assert_shown(
        (await gql.data(VERSION_QUERY, id=version.model_id))["modelVersion"], written, "query"
    )
    assert_same_record(await storage.model_versions.get(version.model_id), written, "storage")
    last = (await storage.events.for_entity(version.model_id, 100))[-1]
    assert_same_record(records.model_version_after(last), written, "last event")


@EXAMPLES
@given(
    job=records_of(TrainingJob),
    version=records_of(ModelVersion),
    steps=JOB_STEPS,
    metrics_sent=metrics,
)
async def test_a_created_training_job_reads_back_as_written(
    storage: MongoStorage,
    gql: GraphQLClient,
    job: TrainingJob,
    version: ModelVersion,
    steps: list[tuple[str, Any]],
    metrics_sent: dict[str, int | float],
) -> None:
    version = unique_version_record(version)
    registered = result_of(
        await gql.data(
            ops.REGISTER,
            input={
                "modelId": version.model_id,
                "modelName": version.model_name,
                "version": version.version,
                "modelType": version.model_type.name,
            },
        )
    )
    assert registered["__typename"] == "ModelVersion", registered
    job_id = unique_id(job.job_id)
    sent = {
        "jobId": job_id,
        "modelId": version.model_id,
        "datasetId": job.dataset_id,
        "hyperparameters": job.hyperparameters,
        "logsUrl": job.logs_url,
    }
    result = result_of(await gql.data(whole_jobs(ops.CREATE_JOB), input=sent))
    assert result["__typename"] == "TrainingJob", result
    for key, value in sent.items():
        assert_same(result[key], value, f"createTrainingJob.{key}")
    extras: dict[str, dict[str, Any]] = {
        # A report must name at least one metric.
        "metrics": {"metrics": metrics_sent or {"epoch": 1}},
        "reason": {"reason": job.failure_reason or "diverged"},
        "url": {"url": job.logs_url or "https://logs.example/run"},
    }
    for document, variables in steps:
        result = result_of(
            await gql.data(
                whole_jobs(document), id=job_id, **(extras[variables] if variables else {})
            )
        )
        assert result["__typename"] == "TrainingJob", result
        # What the step wrote is in its answer (which services read back from storage).
        if variables == "reason":
            assert_same(result["failureReason"], extras["reason"]["reason"], "failureReason")
        elif variables == "url":
            assert_same(result["logsUrl"], extras["url"]["url"], "logsUrl")
        elif variables == "metrics":
            for key, value in extras["metrics"]["metrics"].items():
                assert_same(result["metrics"][key], value, f"metrics.{key}")
    stored = await storage.training_jobs.get(job_id)
    assert stored is not None
    written = as_record(TrainingJob, result, hidden_from=stored)

    assert_shown((await gql.data(JOB_QUERY, id=job_id))["trainingJob"], written, "query")
    assert_same_record(stored, written, "storage")
    last = (await storage.events.for_entity(job_id, 100))[-1]
    # No event carries the lease token's hash (services.changes.INTERNAL_FIELDS).
    unfenced = written.model_copy(update={"lease_token_hash": None})
    assert_same_record(records.job_after(last, written.hyperparameters), unfenced, "last event")
