"""Versions that look equal (issue 10, item 8).

A version is a whole SemVer 2.0.0 string: nothing after it (``$`` used to match before a
trailing newline), ASCII digits only. Build metadata does not make a new version: SemVer ranks
``1.0.0+build.1`` and ``1.0.0+build.2`` equal, so the second is a ConflictError, also when
both are registered at once, and ``latestModelVersion`` always has one answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphql_api.domain.semver import SemVer, version_sort_key
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import register
from tests.conftest import GraphQLClient

LATEST = "query($n: String!) { latestModelVersion(modelName: $n) { modelId version } }"
ALL = "{ modelVersions(first: 100, orderBy: VERSION_DESC) { edges { node { version } } } }"


@pytest.mark.parametrize(
    "version",
    [
        "1.0.0\n",
        "1.0.0-rc.1\n",
        "1.0.0+build.1\n",
        "1.0.0\r\n",
        "1.0.0 ",
        " 1.0.0",
        "1.0.0\x00",
        "1.0.0\u200b",
        "1\u0661.0.0",  # ARABIC-INDIC DIGIT ONE: int() reads it as 1
        "1.0.\uff11",  # FULLWIDTH DIGIT ONE
        "1.0.0-rc.\u0661",
    ],
)
async def test_a_version_with_anything_around_or_foreign_digits_is_refused(
    gql: GraphQLClient, version: str
) -> None:
    result = await register(gql, version)
    assert result["__typename"] == "ValidationError", result
    assert result["field"] == "version"
    assert "Semantic Versioning" in result["message"]
    assert (await gql.data(ALL))["modelVersions"]["edges"] == []


async def test_one_and_one_with_a_newline_cannot_coexist(gql: GraphQLClient) -> None:
    assert (await register(gql, "1.0.0"))["__typename"] == "ModelVersion"
    assert (await register(gql, "1.0.0\n"))["__typename"] == "ValidationError"
    assert [e["node"]["version"] for e in (await gql.data(ALL))["modelVersions"]["edges"]] == [
        "1.0.0"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("1.0.0+build.1", "1.0.0+build.2"),
        ("1.0.0", "1.0.0+build.2"),
        ("1.0.0+build.1", "1.0.0"),
        ("2.0.0-rc.1+a", "2.0.0-rc.1+b"),
        ("0.1.0+sha.5114f85", "0.1.0+20130313144700"),
    ],
)
async def test_a_version_differing_only_in_build_metadata_is_a_conflict(
    gql: GraphQLClient, first: str, second: str
) -> None:
    kept = await register(gql, first)
    assert kept["__typename"] == "ModelVersion"
    refused = await register(gql, second)
    assert refused["__typename"] == "ConflictError" and refused["field"] == "version"
    assert "build metadata" in refused["message"] and repr(first) in refused["message"]
    latest = (await gql.data(LATEST, n="churn"))["latestModelVersion"]
    assert latest == {"modelId": kept["modelId"], "version": first}
    # Another model may use it; a different precedence is a new version.
    assert (await register(gql, second, name="fraud"))["__typename"] == "ModelVersion"
    assert (await register(gql, first.split("+")[0] + "-x"))["__typename"] == "ModelVersion"


async def test_concurrent_registrations_of_one_precedence_leave_one(gql: GraphQLClient) -> None:
    results = await asyncio.gather(*(register(gql, f"3.1.4+build.{n}") for n in range(10)))
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["ConflictError"] * 9 + ["ModelVersion"]
    winner = next(r for r in results if r["__typename"] == "ModelVersion")
    for _ in range(3):
        latest = (await gql.data(LATEST, n="churn"))["latestModelVersion"]
        assert latest["modelId"] == winner["modelId"]


async def test_versions_stored_before_the_rule_keep_loading(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    # What an older release could store: equal-precedence twins and a trailing newline,
    # without the precedence_twin field.
    collection = storage.database["model_versions"]
    await collection.drop_index("model_name_precedence_unique")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    legacy = ["1.0.0+build.2", "1.0.0+build.1", "1.0.0\n", "0.9.0"]
    await collection.insert_many(
        [
            {
                "_id": f"legacy-{n}",
                "model_name": "churn",
                "version": version,
                "version_sort_key": version_sort_key(version.rstrip("\n")),
                "model_type": "regression",
                "status": "development",
                "metrics": {},
                "created_date": start + timedelta(minutes=n),
                "deployed_date": None,
                "production_slot": f"legacy-{n}",
                "rev": 0,
            }
            for n, version in enumerate(legacy)
        ]
    )
    await storage.ensure_indexes()  # a restart: the rule's index is built over old records
    await storage.ensure_indexes()  # and again: idempotent

    listed = [e["node"]["version"] for e in (await gql.data(ALL))["modelVersions"]["edges"]]
    assert sorted(listed) == sorted(legacy)
    latest = (await gql.data(LATEST, n="churn"))["latestModelVersion"]
    assert latest is not None and latest["version"] in legacy[:3]
    assert (await register(gql, "1.0.0+build.3"))["__typename"] == "ConflictError"
    assert (await register(gql, "1.0.1"))["__typename"] == "ModelVersion"


# Property tests of the parser: valid versions round-trip; anything appended is refused.
_number = st.integers(min_value=0, max_value=10**6).map(str)
_ident = st.from_regex(r"[0-9A-Za-z-]{1,8}", fullmatch=True).filter(
    lambda s: not (s.isdigit() and len(s) > 1 and s[0] == "0")
)
_versions = st.builds(
    lambda core, pre, build: (
        ".".join(core)
        + (f"-{'.'.join(pre)}" if pre else "")
        + (f"+{'.'.join(build)}" if build else "")
    ),
    st.tuples(_number, _number, _number),
    st.lists(_ident, max_size=3),
    st.lists(st.from_regex(r"[0-9A-Za-z-]{1,8}", fullmatch=True), max_size=3),
)


@given(_versions)
def test_valid_versions_parse_and_print_back_unchanged(version: str) -> None:
    assert str(SemVer.parse(version)) == version


_suffixes = st.one_of(
    st.sampled_from(["\n", "\r\n", " ", "\t", "\x00", "\u200b", "\u0661", "\uff11"]),
    st.text(min_size=1, max_size=3),
)


@given(_versions, _suffixes)
def test_anything_appended_to_a_version_that_is_not_semver_is_refused(
    version: str, suffix: str
) -> None:
    candidate = version + suffix
    # Some suffixes continue a valid version ("1.0.0" + "1", "1.0.0" + "-rc"); the rest fail.
    try:
        parsed = SemVer.parse(candidate)
    except ValueError:
        return
    assert str(parsed) == candidate
    assert candidate.isascii() and candidate.isprintable() and " " not in candidate
