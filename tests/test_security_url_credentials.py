"""URLs stored in records (a version's artifactUri, a job's logsUrl) are read by every key that
may read the record, viewers included: a URL carrying a password or a token is refused, naming
the field and the rule, and nothing is stored. Azure's container@account form is a place, not a
credential, and is kept."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import running_job
from tests.conftest import GraphQLClient
from tests.operations import SET_LOGS
from tests.security_helpers import snapshot
from tests.test_registry_artifacts import register

WITH_CREDENTIALS = [
    "https://alice:s3cret@models.example.com/churn/2.0.0",
    "https://ghp_0123456789abcdef@models.example.com/churn/2.0.0",
    "http://user:@models.example.com/churn",
    "s3://AKIAEXAMPLE:wJalrXUtnFEMI@weights/churn/2.0.0",
    "gs://token@weights/churn",
    "hdfs://hdfs:password@namenode:8020/models/churn",
    "abfss://models:accountkey@acct.dfs.core.windows.net/churn",
]
AZURE_PLACES = [
    "abfss://models@acct.dfs.core.windows.net/churn/2.0.0",
    "wasbs://models@acct.blob.core.windows.net/churn/2.0.0",
]


@pytest.mark.parametrize("uri", WITH_CREDENTIALS)
async def test_an_artifact_uri_with_credentials_is_refused_and_nothing_is_stored(
    gql: GraphQLClient, storage: MongoStorage, uri: str
) -> None:
    before = await snapshot(storage)
    refused = await register(gql, artifactUri=uri)
    assert refused["__typename"] == "ValidationError", refused
    assert (refused["field"], refused["rule"]) == ("artifactUri", "url")
    assert "credentials" in refused["message"]
    assert "s3cret" not in refused["message"] and "accountkey" not in refused["message"]
    assert await snapshot(storage) == before


@pytest.mark.parametrize("uri", AZURE_PLACES)
async def test_an_azure_container_at_account_uri_is_kept(gql: GraphQLClient, uri: str) -> None:
    registered = await register(gql, artifactUri=uri)
    assert registered.get("artifactUri") == uri, registered


@pytest.mark.parametrize(
    "url", [u for u in WITH_CREDENTIALS if not u.startswith(("hdfs", "abfss"))]
)
async def test_a_logs_url_with_credentials_is_refused(gql: GraphQLClient, url: str) -> None:
    job_id = await running_job(gql)
    answer: dict[str, Any] = (await gql.data(SET_LOGS, id=job_id, url=url))["setTrainingJobLogsUrl"]
    assert (answer["__typename"], answer["field"], answer["rule"]) == (
        "ValidationError",
        "logsUrl",
        "url",
    )
    job = await gql.data("query($id: ID!) { trainingJob(jobId: $id) { logsUrl } }", id=job_id)
    assert job["trainingJob"]["logsUrl"] is None
