"""The exported SDL matches the code, and the schema documents itself."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLObjectType, build_schema

from graphql_api.sdl import schema_sdl

ROOT = Path(__file__).resolve().parent.parent


def test_schema_graphql_is_in_sync_with_the_code() -> None:
    exported = (ROOT / "schema.graphql").read_text()
    assert exported == schema_sdl(), (
        "schema.graphql is out of date: run `mltrain export-schema` and commit the result"
    )


def test_every_type_and_root_field_has_a_description() -> None:
    schema = build_schema(schema_sdl())
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
    for root in (schema.query_type, schema.mutation_type):
        assert isinstance(root, GraphQLObjectType)
        missing += [f"{root.name}.{f}" for f, field in root.fields.items() if not field.description]
    assert missing == []


def test_records_carry_the_seed_fields_in_camel_case() -> None:
    schema = build_schema(schema_sdl())
    model_version = schema.type_map["ModelVersion"]
    job = schema.type_map["TrainingJob"]
    assert isinstance(model_version, GraphQLObjectType) and isinstance(job, GraphQLObjectType)
    assert {
        "modelId",
        "modelName",
        "version",
        "modelType",
        "status",
        "metrics",
        "createdDate",
        "deployedDate",
    } <= set(model_version.fields)
    assert {
        "jobId",
        "modelId",
        "status",
        "hyperparameters",
        "datasetId",
        "startedDate",
        "completedDate",
        "metrics",
        "logsUrl",
    } <= set(job.fields)
