"""The character policy of free-text input fields (issue 10, item 12; docs/input-policy.md).

Names hide nothing (no control, format, bidi or zero-width characters, no stray spaces, NFC);
free text may span lines but hides nothing either; URLs are http(s) or object storage. Every
refusal is a ValidationError naming the field and rule, and writes nothing. Records stored
before the policy keep loading.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphql_api.domain import text, validation
from graphql_api.domain.errors import ValidationError
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job, register
from tests.conftest import GraphQLClient
from tests.operations import FAIL, JOB, REPORT, SET_LOGS, START

VERSIONS = "{ modelVersions(first: 100) { edges { node { modelId modelName } } } }"
JOBS = "{ trainingJobs(first: 100) { edges { node { jobId datasetId logsUrl } } } }"

HIDDEN_OR_STRAY = [
    ("", "min_length"),
    (" ", "characters"),
    ("   ", "characters"),
    ("\t", "characters"),
    ("a\x00b", "characters"),
    ("hostile\n", "characters"),
    ("a\r\nb", "characters"),
    ("hostile\u200b", "characters"),  # ZERO WIDTH SPACE
    ("\u202eevil", "characters"),  # RIGHT-TO-LEFT OVERRIDE
    ("a\u2066b\u2069", "characters"),  # LEFT-TO-RIGHT ISOLATE
    ("\ufeffbom", "characters"),
    ("a\u200db", "characters"),  # ZERO WIDTH JOINER
    ("x\u00a0y", "characters"),  # NO-BREAK SPACE
    ("a\u2028b", "characters"),  # LINE SEPARATOR
    ("priv\ue000", "characters"),  # private use
    ("a  b", "characters"),
    (" lead", "characters"),
    ("trail ", "characters"),
    ("hostile\u3164", "characters"),  # HANGUL FILLER: a letter that shows nothing
    ("a\u2800b", "characters"),  # BRAILLE PATTERN BLANK
    ("a\u00adb", "characters"),  # SOFT HYPHEN
    ("a\U000e0041", "characters"),  # TAG LATIN CAPITAL LETTER A
    ("cafe\u0301", "unicode_nfc"),  # e + COMBINING ACUTE: 'café' not in NFC
    ("x" * 201, "max_length"),
]
VISIBLE_NAMES = [
    "churn-predictor",
    "Churn Predictor v2",
    "meta-llama/Llama-3-8B",
    "a_b.c:d@e+f#1",
    "caf\u00e9",
    "\u6a21\u578b",
    "\U0001f642",
    "\u2764\ufe0f",  # HEAVY BLACK HEART + VARIATION SELECTOR-16
    "x" * 200,
]


async def model_id(gql: GraphQLClient) -> str:
    existing = (await gql.data(VERSIONS))["modelVersions"]["edges"]
    if existing:
        return str(existing[0]["node"]["modelId"])
    return str((await register(gql))["modelId"])


def assert_refused(result: dict[str, Any], field: str, rule: str) -> None:
    assert result["__typename"] == "ValidationError", result
    assert (result["field"], result["rule"]) == (field, rule), result


@pytest.mark.parametrize(("name", "rule"), HIDDEN_OR_STRAY)
async def test_model_names_that_hide_characters_are_refused(
    gql: GraphQLClient, name: str, rule: str
) -> None:
    assert_refused(await register(gql, modelName=name), "modelName", rule)
    assert (await gql.data(VERSIONS))["modelVersions"]["edges"] == []


@pytest.mark.parametrize("name", VISIBLE_NAMES)
async def test_visible_model_names_are_kept_as_sent(gql: GraphQLClient, name: str) -> None:
    created = await register(gql, modelName=name)
    assert created["__typename"] == "ModelVersion" and created["modelName"] == name


@pytest.mark.parametrize(("name", "rule"), HIDDEN_OR_STRAY)
async def test_dataset_ids_follow_the_name_policy(gql: GraphQLClient, name: str, rule: str) -> None:
    assert_refused(await create_job(gql, await model_id(gql), datasetId=name), "datasetId", rule)
    assert (await gql.data(JOBS))["trainingJobs"]["edges"] == []


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        ("oom\x00", "characters"),
        ("\u202egpu 0 fine", "characters"),
        ("a\u2067b", "characters"),
        ("bell\x07", "characters"),
        ("   ", "min_length"),
        ("x" * 4097, "max_length"),
    ],
)
async def test_failure_reasons_hide_nothing(gql: GraphQLClient, reason: str, rule: str) -> None:
    job = await create_job(gql, await model_id(gql))
    await gql.data(START, id=job["jobId"])
    assert_refused(
        (await gql.data(FAIL, id=job["jobId"], reason=reason))["failTrainingJob"], "reason", rule
    )
    assert (await gql.data(JOB, id=job["jobId"]))["trainingJob"]["status"] == "RUNNING"


async def test_a_failure_reason_may_span_lines(gql: GraphQLClient) -> None:
    job = await create_job(gql, await model_id(gql))
    await gql.data(START, id=job["jobId"])
    reason = "CUDA out of memory\n\tat step 1200\r\nretry with batch 32 \U0001f642"
    failed = (await gql.data(FAIL, id=job["jobId"], reason=reason))["failTrainingJob"]
    assert failed["status"] == "FAILED" and failed["failureReason"] == reason


BAD_URLS = [
    ("javascript:alert(1)", "url_scheme"),
    ("JavaScript:alert(document.cookie)", "url_scheme"),
    ("data:text/html,<script>alert(1)</script>", "url_scheme"),
    ("vbscript:msgbox(1)", "url_scheme"),
    ("file:///etc/passwd", "url_scheme"),
    ("ftp://logs.example.com/x", "url_scheme"),
    ("/relative/path.log", "url_scheme"),
    ("https://", "url"),
    ("s3:bucket/key", "url"),
    ("https://logs.example.com/a b", "url"),
    ("https://ex\u200bample.com/x", "url"),
    ("https://logs.example.com/\x00", "url"),
    ("https://logs.example.com/" + "x" * 2048, "max_length"),
]
GOOD_URLS = [
    "https://logs.example.com/runs/42?tail=1#end",
    "http://127.0.0.1:8080/logs",
    "HTTPS://LOGS.EXAMPLE.COM/A",
    "s3://ml-logs/churn/run.log",
    "gs://bucket/run.log",
    "abfss://container@account.dfs.core.windows.net/run.log",
    "hdfs://namenode:8020/logs/run.log",
]


@pytest.mark.parametrize(("url", "rule"), BAD_URLS)
async def test_logs_urls_are_http_or_storage_only(gql: GraphQLClient, url: str, rule: str) -> None:
    assert_refused(await create_job(gql, await model_id(gql), logsUrl=url), "logsUrl", rule)
    assert (await gql.data(JOBS))["trainingJobs"]["edges"] == []
    job = await create_job(gql, await model_id(gql), jobId="ok-job")
    set_result = (await gql.data(SET_LOGS, id=job["jobId"], url=url))["setTrainingJobLogsUrl"]
    assert_refused(set_result, "logsUrl", rule)
    assert (await gql.data(JOB, id="ok-job"))["trainingJob"]["logsUrl"] is None


@pytest.mark.parametrize("url", GOOD_URLS)
async def test_http_and_storage_urls_are_kept(gql: GraphQLClient, url: str) -> None:
    job = await create_job(gql, await model_id(gql), logsUrl=url)
    assert job["logsUrl"] == url
    again = (await gql.data(SET_LOGS, id=job["jobId"], url=url))["setTrainingJobLogsUrl"]
    assert again["logsUrl"] == url


@pytest.mark.parametrize("key", ["lo\u200bss", "loss\n", " loss", "loss ", "a\u202eb", "\x00"])
async def test_metric_and_hyperparameter_keys_hide_nothing(gql: GraphQLClient, key: str) -> None:
    assert_refused(await register(gql, metrics={key: 1.0}), "metrics", "characters")
    assert_refused(
        await create_job(gql, await model_id(gql), hyperparameters={"optimizer": {key: 1}}),
        "hyperparameters",
        "characters",
    )
    job = await create_job(gql, await model_id(gql), jobId="keys-ok")
    await gql.data(START, id="keys-ok")
    report = (await gql.data(REPORT, id=job["jobId"], metrics={key: 1.0}))["reportTrainingMetrics"]
    assert_refused(report, "metrics", "characters")


FILTERS = [
    ("modelVersions", "modelNames", "hostile\u200b", "characters"),
    ("modelVersions", "modelNames", "a\x00", "characters"),
    ("modelVersions", "modelIds", "has space", "id_pattern"),
    ("modelVersions", "modelIds", "id\n", "id_pattern"),
    ("trainingJobs", "datasetIds", "d\x00", "characters"),
    ("trainingJobs", "datasetIds", "\u202ed", "characters"),
    ("trainingJobs", "jobIds", "", "id_pattern"),
    ("trainingJobs", "modelIds", "x" * 129, "id_pattern"),
]


@pytest.mark.parametrize(("query", "field", "value", "rule"), FILTERS)
async def test_filter_values_follow_their_fields_policy(
    gql: GraphQLClient, query: str, field: str, value: str, rule: str
) -> None:
    document = f'query($v: String!) {{ {query}(filter: {{{field}: ["ok", $v]}}) {{ totalCount }} }}'
    if field.endswith("Ids") and field != "datasetIds":
        document = document.replace("$v: String!", "$v: ID!")
    body = await gql.execute(document, v=value)
    assert body["data"] is None
    extensions = body["errors"][0]["extensions"]
    assert extensions == {"code": "VALIDATION_ERROR", "field": f"filter.{field}[1]", "rule": rule}


@pytest.mark.parametrize("lookup", ["productionModelVersion", "latestModelVersion"])
@pytest.mark.parametrize("name", ["churn\n", "churn\u200b", ""])
async def test_lookups_by_name_follow_the_name_policy(
    gql: GraphQLClient, lookup: str, name: str
) -> None:
    body = await gql.execute(
        f"query($n: String!) {{ {lookup}(modelName: $n) {{ modelId }} }}", n=name
    )
    assert body["errors"][0]["extensions"]["field"] == "modelName"
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"


async def test_records_stored_before_the_policy_keep_loading(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    await storage.database["model_versions"].insert_one(
        {
            "_id": "old-model",
            "model_name": "hostile\u200b",
            "version": "1.0.0",
            "version_sort_key": "011001001000~",
            "model_type": "regression",
            "status": "development",
            "metrics": {"lo\u200bss": 1.0},
            "created_date": now,
            "deployed_date": None,
            "production_slot": "old-model",
            "precedence_twin": "",
            "rev": 0,
        }
    )
    await storage.database["training_jobs"].insert_one(
        {
            "_id": "old-job",
            "model_id": "old-model",
            "status": "FAILED",
            "hyperparameters": {"k\n": 1},
            "dataset_id": "d\x00",
            "started_date": now,
            "completed_date": now,
            "metrics": {},
            "logs_url": "javascript:alert(1)",
            "created_date": now,
            "failure_reason": "\u202eoops",
            "rev": 0,
        }
    )
    versions = (await gql.data(VERSIONS))["modelVersions"]["edges"]
    assert [v["node"]["modelName"] for v in versions] == ["hostile\u200b"]
    job = (await gql.data(JOB, id="old-job"))["trainingJob"]
    assert (job["datasetId"], job["logsUrl"], job["failureReason"]) == (
        "d\x00",
        "javascript:alert(1)",
        "\u202eoops",
    )
    # Changing them holds the new value to the policy, not the old one.
    fixed = (await gql.data(SET_LOGS, id="old-job", url="https://logs.example.com/old-job"))[
        "setTrainingJobLogsUrl"
    ]
    assert fixed["logsUrl"] == "https://logs.example.com/old-job"


# Properties of the name policy: whatever is accepted shows every character it holds.
_HIDDEN = st.sampled_from(
    list("\x00\n\t\u200b\u200d\u202e\u2066\ufeff\u00a0\u2028\u3164\u2800\u00ad")
)


@given(st.text(max_size=40))
def test_an_accepted_name_hides_no_character(name: str) -> None:
    try:
        text.check_name(name)
    except text.PolicyError:
        return
    assert name == name.strip() and unicodedata.is_normalized("NFC", name)
    for char in name:
        category = unicodedata.category(char)
        assert char == " " or category[0] in "LMNPS", (char, category)


@given(st.text(min_size=1, max_size=20).filter(lambda n: _accepted(n)), _HIDDEN, st.data())
def test_one_hidden_character_anywhere_makes_a_name_refused(
    name: str, hidden: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(name)))
    with pytest.raises(text.PolicyError):
        text.check_name(name[:at] + hidden + name[at:])


def _accepted(name: str) -> bool:
    try:
        text.check_name(name)
    except text.PolicyError:
        return False
    return True


LEGACY_JOB = {
    "job_id": "old-job",
    "model_id": "old-model",
    "status": "FAILED",
    "dataset_id": "d\x00",
    "hyperparameters": {"k\n": {"lo\u200bss": 1}},
    "metrics": {"lo\u200bss": 1.0},
    "logs_url": "javascript:alert(1)",
    "failure_reason": "\u202eoops",
    "created_date": datetime(2026, 1, 1, tzinfo=UTC),
}
LEGACY_VERSION = {
    "model_id": "old-model",
    "model_name": "hostile\u200b",
    "version": "1.0.0\n",
    "model_type": "regression",
    "metrics": {"a\u202eb": 1.0},
    "created_date": datetime(2026, 1, 1, tzinfo=UTC),
}


@pytest.mark.parametrize(
    ("model", "record", "overrides"),
    [
        (TrainingJob, LEGACY_JOB, {}),
        (TrainingJob, LEGACY_JOB, {"logs_url": ""}),  # createTrainingJob accepted "" before
        (ModelVersion, LEGACY_VERSION, {}),
    ],
)
def test_event_snapshots_stored_before_the_policy_still_validate(
    model: type[TrainingJob | ModelVersion], record: dict[str, Any], overrides: dict[str, Any]
) -> None:
    # What the live feed does with an event's snapshot (graphql_api/live/records.py): validate
    # it without the input context. Old records must pass; the same values as new input fail.
    snapshot = {**record, **overrides}
    assert model.model_validate(snapshot).model_dump() == model(**snapshot).model_dump()
    with pytest.raises(ValidationError):
        validation.build(model, **snapshot)
