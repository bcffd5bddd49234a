"""The orderings of the list queries as keyset sort specs (every one ends with ``_id``).

A spec's name goes into its cursors and names the list as well as the ordering, so that a
cursor of one list is refused by another (their orderings share names).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from graphql_api.domain.queries import ModelVersionOrder, TrainingJobOrder
from graphql_api.storage.mongo.keyset import SortField, SortSpec

MODEL_VERSION_SORTS: dict[ModelVersionOrder, SortSpec] = {
    order: SortSpec(f"modelVersions:{order.value}", fields)
    for order, fields in {
        ModelVersionOrder.CREATED_DATE_DESC: (
            SortField("created_date", DESCENDING, "datetime"),
            SortField("_id", DESCENDING),
        ),
        ModelVersionOrder.CREATED_DATE_ASC: (
            SortField("created_date", ASCENDING, "datetime"),
            SortField("_id", ASCENDING),
        ),
        ModelVersionOrder.VERSION_DESC: (
            SortField("version_sort_key", DESCENDING),
            SortField("_id", DESCENDING),
        ),
        ModelVersionOrder.VERSION_ASC: (
            SortField("version_sort_key", ASCENDING),
            SortField("_id", ASCENDING),
        ),
    }.items()
}

TRAINING_JOB_SORTS: dict[TrainingJobOrder, SortSpec] = {
    TrainingJobOrder.CREATED_DATE_DESC: SortSpec(
        "trainingJobs:CREATED_DATE_DESC",
        (SortField("created_date", DESCENDING, "datetime"), SortField("_id", DESCENDING)),
    ),
    TrainingJobOrder.CREATED_DATE_ASC: SortSpec(
        "trainingJobs:CREATED_DATE_ASC",
        (SortField("created_date", ASCENDING, "datetime"), SortField("_id", ASCENDING)),
    ),
}
