"""resolveModelVersion: npm range semantics (the README's desugarings, a property test against
the definitions of caret, tilde, x-ranges and comparisons), pre-releases only when asked,
statuses, invalid ranges, and reading a model's versions page by page over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.domain.semver import SemVer
from graphql_api.domain.semver_ranges import parse_range
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import ARCHIVE, PROMOTE, REGISTER

RESOLVE = """
query($name: String!, $range: String!, $statuses: [ModelStatus!], $pre: Boolean! = false) {
  resolveModelVersion(modelName: $name, range: $range, statuses: $statuses,
                      includePrerelease: $pre) { modelId version status }
}"""


@pytest.mark.parametrize(
    ("text", "comparators"),
    [
        # node-semver's README, "Advanced Range Syntax".
        ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4"),
        ("1.2 - 2.3.4", ">=1.2.0 <=2.3.4"),
        ("1.2.3 - 2.3", ">=1.2.3 <2.4.0-0"),
        ("1.2.3 - 2", ">=1.2.3 <3.0.0-0"),
        ("*", "*"),
        ("", "*"),
        ("1.x", ">=1.0.0 <2.0.0-0"),
        ("1.2.x", ">=1.2.0 <1.3.0-0"),
        ("1", ">=1.0.0 <2.0.0-0"),
        ("1.2", ">=1.2.0 <1.3.0-0"),
        ("~1.2.3", ">=1.2.3 <1.3.0-0"),
        ("~1.2", ">=1.2.0 <1.3.0-0"),
        ("~1", ">=1.0.0 <2.0.0-0"),
        ("~0.2.3", ">=0.2.3 <0.3.0-0"),
        ("~0.2", ">=0.2.0 <0.3.0-0"),
        ("~0", ">=0.0.0 <1.0.0-0"),
        ("~1.2.3-beta.2", ">=1.2.3-beta.2 <1.3.0-0"),
        ("^1.2.3", ">=1.2.3 <2.0.0-0"),
        ("^0.2.3", ">=0.2.3 <0.3.0-0"),
        ("^0.0.3", ">=0.0.3 <0.0.4-0"),
        ("^1.2.3-beta.2", ">=1.2.3-beta.2 <2.0.0-0"),
        ("^0.0.3-beta", ">=0.0.3-beta <0.0.4-0"),
        ("^1.2.x", ">=1.2.0 <2.0.0-0"),
        ("^0.0.x", ">=0.0.0 <0.1.0-0"),
        ("^0.0", ">=0.0.0 <0.1.0-0"),
        ("^1.x", ">=1.0.0 <2.0.0-0"),
        ("^0.x", ">=0.0.0 <1.0.0-0"),
        ("^1.4", ">=1.4.0 <2.0.0-0"),
        # Primitives with partial versions, spaces after operators, ||, v and = prefixes.
        (">1.2", ">=1.3.0"),
        (">1", ">=2.0.0"),
        ("<1.2", "<1.2.0-0"),
        ("<=1.2", "<1.3.0-0"),
        (">=1.2", ">=1.2.0"),
        (">= 1.2.3 < 2", ">=1.2.3 <2.0.0-0"),
        ("1.2.3 || >=2.5.0", "=1.2.3 || >=2.5.0"),
        ("v1.2.3", "=1.2.3"),
        ("=1.2.3", "=1.2.3"),
        ("~>1.2", ">=1.2.0 <1.3.0-0"),
    ],
)
def test_ranges_desugar_as_node_semver_documents(text: str, comparators: str) -> None:
    assert str(parse_range(text)) == comparators


@pytest.mark.parametrize(
    "text",
    [
        "~>=1",
        "1.2.3.4",
        ">=a",
        "^",
        "1.2.3 -",
        "a || b",
        "1.2.3-",
        ">=01.2.3",
        "1.2.3\n",
        "^1\u0661",
    ],
)
def test_what_is_not_a_range_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_range(text)


numbers = st.integers(min_value=0, max_value=4)
releases = st.builds(SemVer, numbers, numbers, numbers)
prereleases = st.builds(
    SemVer, numbers, numbers, numbers, st.sampled_from([("rc", "1"), ("0",), ("beta",)])
)


@settings(max_examples=400, deadline=None)
@given(version=releases, bound=releases)
def test_caret_tilde_and_x_ranges_match_their_definitions(version: SemVer, bound: SemVer) -> None:
    major, minor, patch = bound.major, bound.minor, bound.patch
    at_least = version >= bound
    caret = (
        version.major == major
        if major > 0
        else version.major == 0 and version.minor == minor
        if minor > 0
        else (version.major, version.minor) == (0, 0) and version.patch == patch
    )
    caret_of_partial = (
        version.major == major if major > 0 else (version.major, version.minor) == (0, minor)
    )
    definitions = {
        f"^{bound}": at_least and caret,
        f"~{bound}": at_least and (version.major, version.minor) == (major, minor),
        f"{major}.x": version.major == major,
        f"{major}.{minor}.x": (version.major, version.minor) == (major, minor),
        f"^{major}.{minor}": version >= SemVer(major, minor, 0) and caret_of_partial,
        f">={bound}": at_least,
        f">{bound}": version > bound,
        f"<{bound}": version < bound,
        f"<={bound}": version <= bound,
        f"{bound}": version == bound,
        f"{bound} - {major}.{minor + 1}": at_least and version < SemVer(major, minor + 2, 0),
        f"<{bound} || >{bound}": version != bound,
        "*": True,
    }
    for text, expected in definitions.items():
        assert parse_range(text).matches(version) is expected, (text, str(version))


@settings(max_examples=300, deadline=None)
@given(version=prereleases, bound=releases)
def test_a_pre_release_matches_only_when_asked(version: SemVer, bound: SemVer) -> None:
    for text in (f"^{bound}", f"~{bound}", f">={bound}", "*", f"{bound.major}.x"):
        assert not parse_range(text).matches(version), (text, str(version))
    # Named by a comparator of the same major.minor.patch: it may match.
    same = SemVer(version.major, version.minor, version.patch, ("0",))
    assert parse_range(f">={same}").matches(version)
    # Asked for: the range's bounds decide, pre-releases of the lower bound included.
    core = SemVer(version.major, version.minor, version.patch)
    for text in (f"^{core}", f"~{core}", f"{core.major}.{core.minor}.x", "*"):
        assert parse_range(text, include_prerelease=True).matches(version, True), text
    assert not parse_range(f">={core}", include_prerelease=True).matches(version, True)


@pytest.fixture
def name() -> str:
    return f"churn-{uuid.uuid4().hex[:6]}"


async def register(gql: GraphQLClient, name: str, version: str) -> str:
    data = await gql.data(
        REGISTER, input={"modelName": name, "version": version, "modelType": "REGRESSION"}
    )
    return str(data["registerModelVersion"]["modelId"])


async def resolve(gql: GraphQLClient, name: str, range_: str, **variables: Any) -> str | None:
    found = (await gql.data(RESOLVE, name=name, range=range_, **variables))["resolveModelVersion"]
    return None if found is None else str(found["version"])


async def test_the_highest_matching_version_is_resolved(gql: GraphQLClient, name: str) -> None:
    ids = {}
    for version in ("1.3.9", "1.4.0", "1.10.2", "1.11.0-rc.1", "2.0.0", "2.1.0-beta", "0.4.1"):
        ids[version] = await register(gql, name, version)
    assert await resolve(gql, name, "^1.4") == "1.10.2"  # not string order, not the rc
    assert await resolve(gql, name, "~1.4") == "1.4.0"
    assert await resolve(gql, name, ">=1.0.0 <2") == "1.10.2"
    assert await resolve(gql, name, "1.x || 0.x") == "1.10.2"
    assert await resolve(gql, name, "*") == "2.0.0"
    assert await resolve(gql, name, "^0.4") == "0.4.1"
    assert await resolve(gql, name, "^3") is None
    assert await resolve(gql, name, ">=1.11.0-rc.0 <2") == "1.11.0-rc.1"
    assert await resolve(gql, name, "^1.4", pre=True) == "1.11.0-rc.1"
    assert await resolve(gql, name, "*", pre=True) == "2.1.0-beta"
    # Statuses: by default all but ARCHIVED.
    await gql.data(ARCHIVE, id=ids["1.10.2"])
    assert await resolve(gql, name, "^1.4") == "1.4.0"
    await gql.data(PROMOTE, id=ids["1.3.9"], to="TESTING")
    assert await resolve(gql, name, "^1", statuses=["TESTING"]) == "1.3.9"
    assert await resolve(gql, name, "^1", statuses=["ARCHIVED"]) == "1.10.2"
    assert await resolve(gql, f"{name}-none", "*") is None


async def test_an_invalid_range_or_argument_is_a_validation_error(
    gql: GraphQLClient, name: str
) -> None:
    for range_, field, rule in (
        ("^1.2.3.4", "range", "semver_range"),
        (">=a", "range", "semver_range"),
        ("x" * 300, "range", "semver_range"),
        ("^1\u0661", "range", "semver_range"),
    ):
        body = await gql.execute(RESOLVE, name=name, range=range_)
        assert body["data"]["resolveModelVersion"] is None
        extensions = body["errors"][0]["extensions"]
        assert (extensions["code"], extensions["field"], extensions["rule"]) == (
            "VALIDATION_ERROR",
            field,
            rule,
        ), body
    body = await gql.execute(RESOLVE, name=name, range="^1", statuses=[])
    assert body["errors"][0]["extensions"]["field"] == "statuses"
    body = await gql.execute(RESOLVE, name="a\u200bb", range="^1")
    assert body["errors"][0]["extensions"]["field"] == "modelName"


async def test_versions_are_read_a_page_at_a_time_until_one_matches(
    gql: GraphQLClient, storage: MongoStorage, name: str
) -> None:
    """130 versions: the newest matches in one read; the oldest needs the second page; a range
    nothing matches reads every page of that one name, and stops."""
    for minor in range(130):
        await register(gql, name, f"1.{minor}.0")
    await register(gql, f"{name}-other", "1.0.0")
    for range_, answer, reads in (("^1", "1.129.0", 1), ("<1.1", "1.0.0", 2), ("^2", None, 2)):
        before = storage.stats.round_trips
        assert await resolve(gql, name, range_) == answer
        assert storage.stats.round_trips - before == reads, range_
