"""The in-memory mock's finds by ``_id`` (graphql_api/storage/mongo/mock_lookup.py): the same
documents as mongomock's scan for any filter, on random collections; a bad filter refused as
before; a TTL collection left to mongomock; and one document visited instead of all."""

from __future__ import annotations

from typing import Any

import mongomock
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mongomock import filtering

from graphql_api.storage.mongo import mock_lookup

ids = st.one_of(st.integers(min_value=-3, max_value=12), st.sampled_from(["a", "b", "c", "10"]))
documents = st.lists(
    st.fixed_dictionaries(
        {"_id": ids, "n": st.integers(0, 3)},
        optional={"tag": st.sampled_from(["x", "y"]), "vals": st.lists(st.integers(0, 3))},
    ),
    max_size=12,
    unique_by=lambda d: d["_id"],
)
values = st.one_of(ids, st.booleans(), st.floats(-3, 12), st.none(), st.just({"$in": [1, "a"]}))
filters = st.one_of(
    st.fixed_dictionaries({"_id": values}),
    st.fixed_dictionaries({"_id": values, "n": st.integers(0, 3)}),
    st.fixed_dictionaries({"_id": values, "n": st.just({"$gte": 2})}),
    st.fixed_dictionaries({"_id": values, "vals": st.integers(0, 3)}),
    st.fixed_dictionaries({"n": st.integers(0, 3)}),
    st.fixed_dictionaries({"$or": st.just([{"_id": 1}, {"_id": "a"}])}),
)


def new_collection() -> Any:
    """A mongomock collection (mongomock has no type hints)."""
    client: Any = mongomock.MongoClient()
    return client.db.c


def found(collection: Any, filter_: dict[str, Any], iterate: Any) -> list[dict[str, Any]]:
    return [dict(d) for d in iterate(collection, filter_)]


@settings(max_examples=300, deadline=None)
@given(docs=documents, filter_=filters)
def test_finds_give_what_mongomock_gives(
    docs: list[dict[str, Any]], filter_: dict[str, Any]
) -> None:
    collection = new_collection()
    if docs:
        collection.insert_many([dict(d) for d in docs])
    ours = found(collection, filter_, mock_lookup._iter_documents)
    theirs = found(collection, filter_, mock_lookup._mongomock_iter_documents)
    assert ours == theirs


def outcome(iterate: Any, collection: Any, filter_: dict[str, Any]) -> object:
    try:
        return found(collection, filter_, iterate)
    except Exception as error:  # the refusal itself is what is compared
        return (type(error).__name__, str(error))


BAD: list[dict[str, Any]] = [
    {"n": {"$nosuchoperator": 1}},
    {"$where": "this.n > 1"},
    {"$and": 1},
    {"n": {"$regex": 1}},
]


@pytest.mark.parametrize("stored", [[], [{"_id": "a", "n": 1}], [{"_id": "b", "n": 1}]])
@pytest.mark.parametrize("extra", BAD)
def test_a_bad_filter_is_refused_as_mongomock_refuses_it(
    stored: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    collection = new_collection()
    if stored:
        collection.insert_many(stored)
    bad = {"_id": "a", **extra}
    theirs = outcome(mock_lookup._mongomock_iter_documents, collection, bad)
    assert outcome(mock_lookup._iter_documents, collection, bad) == theirs


def test_the_bad_filters_include_refusals() -> None:
    collection = new_collection()
    collection.insert_one({"_id": "a", "n": 1})
    outcomes = [
        outcome(mock_lookup._mongomock_iter_documents, collection, {"_id": "a", **extra})
        for extra in BAD
    ]
    assert sum(isinstance(o, tuple) for o in outcomes) >= 3, outcomes


def test_one_document_is_visited_not_the_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    collection = new_collection()
    collection.insert_many([{"_id": f"job-{n}", "n": n} for n in range(500)])
    visited: list[Any] = []
    filter_applies: Any = filtering.filter_applies

    def counted(filter_: Any, document: Any) -> bool:
        visited.append(document.get("_id"))
        return bool(filter_applies(filter_, document))

    monkeypatch.setattr(filtering, "filter_applies", counted)
    monkeypatch.setattr(mongomock.collection, "filter_applies", counted)
    mock_lookup.install()
    assert collection.find_one({"_id": "job-7"}) == {"_id": "job-7", "n": 7}
    collection.update_one({"_id": "job-9", "n": 9}, {"$set": {"seen": True}})
    assert collection.find_one({"_id": "job-9"}) == {"_id": "job-9", "n": 9, "seen": True}
    assert collection.delete_one({"_id": "job-11"}).deleted_count == 1
    assert visited == ["job-7", "job-9", "job-9", "job-11"]
    # A filter without a plain _id still goes through mongomock's scan.
    visited.clear()
    assert collection.count_documents({"n": {"$lt": 3}}) == 3
    assert len(visited) == 499


def test_a_ttl_collection_is_left_to_mongomock() -> None:
    mock_lookup.install()
    collection = new_collection()
    collection.create_index("at", expireAfterSeconds=3600)
    collection.insert_one({"_id": "a"})
    assert collection.find_one({"_id": "a"}) == {"_id": "a"}
    assert collection._store._ttl_indexes  # the case the fast path leaves alone
