"""Every query shape the storage issues, next to the index that serves it.

A *shape* is what an index choice depends on: the collection, the command, the fields the filter
constrains (values and operators aside; ``$and``/``$or`` branches flattened) and the sort. The
API lets a client combine list filters freely, so a list shape here names the fields it needs
at least: a combination is served by the index of any of its listed parts (each part alone is
the widest read). The table in docs/real-server.md is this list.

``tests/test_realdb_query_shapes.py`` drives every storage method on the real server, records the
commands the driver sends, fails on a shape missing here, and runs ``explain`` for each: on
DocumentDB a plan that scans a whole collection (a ``Seq Scan``, or an index scan whose only
condition is the collection's shard key) fails, unless the shape is listed ``bounded=False``
with the reason. The in-memory mock has no indexes and no ``explain``: the test skips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Commands that read or write documents (the rest, e.g. ``createIndexes``, ``buildInfo``,
#: ``ping``, ``getMore``, ``endSessions``, are not query shapes).
QUERY_COMMANDS = ("find", "aggregate", "count", "findAndModify", "insert", "update", "delete")


@dataclass(frozen=True)
class ShapeKey:
    collection: str
    command: str
    filter: frozenset[str]
    sort: tuple[str, ...]  # "created_date:-1", "_id:-1", ...

    def __str__(self) -> str:
        fields = ", ".join(sorted(self.filter)) or "-"
        return f"{self.collection}.{self.command} filter({fields}) sort({', '.join(self.sort)})"


@dataclass(frozen=True)
class QueryShape:
    collection: str
    command: str
    filter: frozenset[str]
    sort: tuple[str, ...]
    used_by: str
    index: str
    #: False: on DocumentDB this shape reads the whole collection (``note`` says why and what
    #: would change it). The explain test holds the list to exactly these.
    bounded: bool = True
    note: str = ""
    #: The filter itself matches (nearly) every document: the shape reads the whole collection
    #: whichever plan serves it (a sequential scan, or an index scan whose every entry
    #: matches), so the explain test does not hold it to one plan. Implies ``bounded=False``.
    matches_all: bool = False

    def covers(self, key: ShapeKey) -> bool:
        return (self.collection, self.command, self.sort) == (
            key.collection,
            key.command,
            key.sort,
        ) and self.filter <= key.filter


def _shape(
    collection: str,
    command: str,
    fields: Iterable[str],
    sort: Iterable[str],
    used_by: str,
    index: str,
    bounded: bool = True,
    note: str = "",
    matches_all: bool = False,
) -> QueryShape:
    return QueryShape(
        collection,
        command,
        frozenset(fields),
        tuple(sort),
        used_by,
        index,
        bounded and not matches_all,
        note,
        matches_all,
    )


DESC = ("created_date:-1", "_id:-1")
ASC = ("created_date:1", "_id:1")
VERSION_DESC = ("version_sort_key:-1", "_id:-1")
VERSION_ASC = ("version_sort_key:1", "_id:1")
CURSOR = ("created_date", "_id")  # the keyset filter of a page after a cursor
PLAIN_SORT = (
    "a plain sorted page. DocumentDB sorts every matching row (no ordered index scan), so "
    "there pages are read in windows of the sort key (the shapes with the sort key in the "
    "filter), and this is read only as a process's first page of the list (once per "
    "ordering: where are its rows?) or while the list is shorter than a page "
    "(storage/mongo/windows.py). Where windows are off, MongoDB walks the index in order"
)
WINDOWS = (
    "windowed (storage/mongo/windows.py): reads the rows of the windows the page needs, "
    "any filter ANDed"
)
FILTERED_WINDOWS = (
    "the filter and the window in one range of the ordered compound index: reads the rows "
    "of the window that match (unordered, DocumentDB read every index entry of the "
    "filter's value: 12,000 for FAILED at 100,000 jobs; bench/README.md, 'Sorted pages')"
)
#: Training-job list filters whose compound index also bounds a window of created_date.
WINDOW_FILTER_FIELDS = ("status", "model_id", "dataset_id")
PRECEDENCE_START_UP = (
    "start-up only, never a request (MongoModelVersionStore._ensure_precedence_unique): "
    "equal-precedence twins stored before the rule can be anywhere, so every start reads "
    "every version once (a sequential scan before the index exists, the precedence index's "
    "every entry after: the filter matches all); an index cannot make that smaller. Measured "
    "on DocumentDB (bench.start_up, median of 5, loaded VM): 10 ms at 3,000 versions, 80-130 "
    "ms at 30,000."
)

NAME_CONTAINS = (
    "a case-insensitive substring of the name: DocumentDB matches it against every entry of "
    "the name index (not the documents). Measured in bench/README.md"
)
KEYED_SCAN = (
    "a metric or hyperparameter of the client's choosing: no index serves every key, so "
    "the filter reads every record (combine with another filter to narrow it). Measured in "
    "bench/README.md"
)
METRIC_ORDER = (
    "ordered by a metric of the client's choosing: sorts every record that matches the "
    "filter (no index per key; DocumentDB sorts without one anyway). Measured in "
    "bench/README.md"
)

JOB_FILTERS = {  # filter field -> the index that serves it
    "_id": "_id_",
    "model_id": "model_id_created_date",
    "dataset_id": "dataset_id_created_date",
    "status": "status_created_date",
    "created_date": "created_date",
    "started_date": "started_date",
    "completed_date": "completed_date",
}
VERSION_FILTERS = {
    "_id": "_id_",
    "model_name": "model_name_version_unique",
    "status": "status_created_date",
    "model_type": "model_type",
    "created_date": "created_date",
    "deployed_date": "deployed_date",
}

SHAPES: tuple[QueryShape, ...] = (
    # ---- training jobs
    _shape("training_jobs", "find", ["_id"], [], "trainingJob(jobId), loaders", "_id_"),
    _shape("training_jobs", "findAndModify", ["_id", "status"], [], "every job mutation", "_id_"),
    _shape("training_jobs", "findAndModify", ["_id", "rev"], [], "job mutation (guard)", "_id_"),
    _shape("training_jobs", "insert", [], [], "createTrainingJob", "_id_ (unique)"),
    _shape(
        "training_jobs",
        "find",
        ["queue", "status"],
        ASC,
        "claimTrainingJob: the oldest PENDING jobs of a queue",
        "queue_status_created_date",
    ),
    _shape(
        "training_jobs",
        "find",
        ["status", "lease_expires_at", "worker_id", "health"],
        ["lease_expires_at:1"],
        "liveness sweep: RUNNING jobs whose lease lapsed",
        "status_lease_expires_at",
    ),
    _shape(
        "training_jobs",
        "findAndModify",
        ["_id", "status", "lease_expires_at", "health"],
        [],
        "liveness sweep: a job late, or lost",
        "_id_",
    ),
    _shape(
        "training_jobs",
        "find",
        ["_id", "status", "lease_expires_at", "health"],
        [],
        "liveness sweep through the guard",
        "_id_",
    ),
    _shape(
        "training_jobs",
        "find",
        ["status", "max_runtime_seconds"],
        ["started_date:1"],
        "liveness sweep: RUNNING jobs with a maxRuntimeSeconds",
        "status_created_date",
        note="sorts the RUNNING jobs (about one per worker) in memory",
    ),
    _shape(
        "training_jobs",
        "find",
        ["status", "retry_due_at"],
        ["retry_due_at:1"],
        "sweep: failed jobs whose automatic retry is due",
        "retry_due_at",
    ),
    _shape(
        "training_jobs",
        "find",
        ["_id", "retry_root"],
        ["attempt:1"],
        "TrainingJob.attempts, retryTrainingJob",
        "_id_ + retry_root",
    ),
    _shape(
        "training_jobs",
        "find",
        ["status", "cancel_deadline_at"],
        ["cancel_deadline_at:1"],
        "sweep: graceful cancels whose grace ran out",
        "status_created_date",
        note="reads the RUNNING jobs (about one per worker)",
    ),
    # ---- leader leases (one document per lease: the liveness sweep, webhook deliveries)
    _shape("leaders", "findAndModify", ["_id"], [], "taking a leader lease", "_id_"),
    _shape("leaders", "find", ["_id"], [], "taking a leader lease (guard)", "_id_"),
    _shape("leaders", "insert", [], [], "the first leader lease", "_id_ (unique)"),
    _shape("leaders", "delete", ["_id", "holder"], [], "releasing a leader lease", "_id_"),
    _shape(
        "training_jobs",
        "update",
        ["queue"],
        [],
        "start-up: jobs stored before queues join the default queue",
        "queue_status_created_date",
    ),
    _shape(
        "training_jobs",
        "update",
        ["_id", "pending_event.event_id"],
        [],
        "a change's event is in the log (clear it)",
        "_id_",
    ),
    _shape(
        "training_jobs",
        "find",
        ["pending_event.occurred_at"],
        ["pending_event.occurred_at:1"],
        "the outbox sweep: changes left without their event",
        "pending_event_occurred_at (sparse: only records with a pending event)",
    ),
    *(
        _shape(
            "training_jobs",
            "find",
            [],
            order,
            "trainingJobs, no filter: first page of a process, short lists",
            "created_date",
            bounded=False,
            note=PLAIN_SORT,
        )
        for order in (DESC, ASC)
    ),
    *(
        _shape(
            "training_jobs",
            "find",
            ["created_date"],
            order,
            "trainingJobs pages in windows of created_date (DocumentDB)",
            "created_date",
            note=WINDOWS,
        )
        for order in (DESC, ASC)
    ),
    *(
        _shape(
            "training_jobs",
            "find",
            CURSOR,
            order,
            "trainingJobs after a cursor",
            "created_date",
            note="windowed: the windows past the cursor; plain: every row past the cursor",
        )
        for order in (DESC, ASC)
    ),
    *(
        _shape("training_jobs", "find", [field], order, f"trainingJobs(filter: {field})", index)
        for field, index in JOB_FILTERS.items()
        for order in (DESC, ASC)
    ),
    *(
        _shape(
            "training_jobs",
            "find",
            [field, *window],
            order,
            f"trainingJobs(filter: {field}) in windows of created_date (DocumentDB){after}",
            f"{field}_created_date (ordered on DocumentDB)",
            note=FILTERED_WINDOWS,
        )
        for field in WINDOW_FILTER_FIELDS
        for window, after in ((["created_date"], ""), (CURSOR, ", after a cursor"))
        for order in (DESC, ASC)
    ),
    _shape(
        "training_jobs",
        "aggregate",
        [],
        [],
        "trainingJobs { totalCount }, no filter",
        "_id_",
        bounded=False,
        note="a count of everything reads everything",
    ),
    *(
        _shape("training_jobs", "aggregate", [field], [], f"totalCount (filter: {field})", index)
        for field, index in JOB_FILTERS.items()
    ),
    _shape(
        "training_jobs",
        "find",
        ["model_id"],
        DESC,
        "modelVersions { trainingJobs }",
        "model_id_created_date",
        note="reads every matching job of the page's models",
    ),
    # ---- model versions
    _shape("model_versions", "find", ["_id"], [], "modelVersion(modelId), loaders", "_id_"),
    _shape(
        "model_versions",
        "find",
        ["model_name", "status"],
        ["deployed_date:-1", "_id:-1"],
        "productionModelVersion during a hand-over; a name stored before pointers",
        "model_name_version_unique",
    ),
    _shape(
        "model_versions",
        "find",
        ["model_name", "status"],
        [],
        "a deployment retiring the versions it displaced",
        "model_name_version_unique",
    ),
    _shape(
        "model_versions",
        "find",
        ["_id", "pending_event"],
        [],
        "a change waiting for another's pending event",
        "_id_",
    ),
    _shape(
        "model_versions",
        "find",
        ["_id", "status"],
        [],
        "registry mutation (guard): the record before claiming it",
        "_id_",
    ),
    _shape(
        "model_versions",
        "find",
        ["_id", "status", "pending_event"],
        [],
        "status change (guard): the record before claiming it",
        "_id_",
    ),
    _shape(
        "model_versions",
        "update",
        ["_id", "pending_event.event_id"],
        [],
        "a change's event is in the log (clear it)",
        "_id_",
    ),
    _shape(
        "model_versions",
        "find",
        ["pending_event.occurred_at"],
        ["pending_event.occurred_at:1"],
        "the outbox sweep: changes left without their event",
        "pending_event_occurred_at (sparse: only records with a pending event)",
    ),
    _shape(
        "model_versions",
        "find",
        ["model_name", "version_sort_key", "precedence_twin"],
        [],
        "registerModelVersion refused: which version holds the precedence",
        "model_name_precedence_unique",
    ),
    _shape(
        "model_versions",
        "find",
        ["model_name"],
        VERSION_DESC,
        "latestModelVersion",
        "model_name_semver",
    ),
    _shape("model_versions", "findAndModify", ["_id", "status"], [], "registry mutations", "_id_"),
    _shape(
        "model_versions", "findAndModify", ["_id", "rev"], [], "registry mutation (guard)", "_id_"
    ),
    _shape("model_versions", "insert", [], [], "registerModelVersion", "_id_, unique indexes"),
    *(
        _shape(
            "model_versions",
            "find",
            [],
            order,
            "modelVersions, no filter: first page of a process, short lists",
            "created_date" if order in (DESC, ASC) else "semver",
            bounded=False,
            note=PLAIN_SORT,
        )
        for order in (DESC, ASC, VERSION_DESC, VERSION_ASC)
    ),
    *(
        _shape(
            "model_versions",
            "find",
            [order[0].partition(":")[0]],
            order,
            f"modelVersions pages in windows of {order[0].partition(':')[0]} (DocumentDB)",
            "created_date" if order in (DESC, ASC) else "semver",
            note=WINDOWS,
        )
        for order in (DESC, ASC, VERSION_DESC, VERSION_ASC)
    ),
    *(
        _shape(
            "model_versions",
            "find",
            CURSOR,
            order,
            "modelVersions after a cursor",
            "created_date",
            note="windowed: the windows past the cursor; plain: every row past the cursor",
        )
        for order in (DESC, ASC)
    ),
    *(
        _shape(
            "model_versions",
            "find",
            ["version_sort_key", "_id"],
            order,
            "modelVersions after a cursor",
            "semver",
            note="windowed: the windows past the cursor; plain: every row past the cursor",
        )
        for order in (VERSION_DESC, VERSION_ASC)
    ),
    *(
        _shape("model_versions", "find", [field], order, f"modelVersions(filter: {field})", index)
        for field, index in VERSION_FILTERS.items()
        for order in (DESC, ASC, VERSION_DESC, VERSION_ASC)
    ),
    # ---- search (issue 14 item 8): tags by index; the rest scan (bench/README.md, "Search")
    *(
        _shape(
            "model_versions",
            "find",
            ["tags", "tags.key"],
            order,
            "modelVersions(filter: tags)",
            "tags",
            note="the versions with the tag key; their values are checked row by row",
        )
        for order in (DESC, ASC, VERSION_DESC, VERSION_ASC)
    ),
    _shape(
        "model_versions", "aggregate", ["tags", "tags.key"], [], "totalCount (filter: tags)", "tags"
    ),
    *(
        _shape(
            "model_versions",
            "find",
            ["model_name", "model_name~"],
            order,
            "modelVersions(filter: nameContains)",
            "model_name_version_unique",
            note=NAME_CONTAINS,
        )
        for order in (DESC, ASC, VERSION_DESC, VERSION_ASC)
    ),
    _shape(
        "model_versions",
        "aggregate",
        ["model_name", "model_name~"],
        [],
        "totalCount (filter: nameContains)",
        "model_name_version_unique",
        note=NAME_CONTAINS,
    ),
    *(
        _shape(
            collection,
            "find",
            [field],
            order,
            f"{items}(filter: {name})",
            "created_date",
            bounded=False,
            note=KEYED_SCAN,
        )
        for collection, items, orders in (
            ("model_versions", "modelVersions", (DESC, ASC, VERSION_DESC, VERSION_ASC)),
            ("training_jobs", "trainingJobs", (DESC, ASC)),
        )
        for field, name in (("metrics.*", "metrics"), ("hyperparameters.*", "hyperparameters"))
        if not (collection == "model_versions" and name == "hyperparameters")
        for order in orders
    ),
    *(
        _shape(
            collection,
            "aggregate",
            [field],
            [],
            f"totalCount (filter: {field.partition('.')[0]})",
            "_id_",
            bounded=False,
            note=KEYED_SCAN,
        )
        for collection in ("model_versions", "training_jobs")
        for field in ("metrics.*", "hyperparameters.*")
        if not (collection == "model_versions" and field == "hyperparameters.*")
    ),
    *(
        _shape(
            collection,
            "find",
            fields,
            sort,
            f"{items}(orderByMetric): {run}",
            "_id_",
            bounded=False,
            note=METRIC_ORDER,
        )
        for collection, items in (
            ("model_versions", "modelVersions"),
            ("training_jobs", "trainingJobs"),
        )
        for direction in (-1, 1)
        for fields, sort, run in (
            (
                ["metrics.*"],
                (f"metrics.*:{direction}", f"_id:{direction}"),
                "the records with the metric",
            ),
            (["metrics.*"], (f"_id:{direction}",), "then those without it"),
        )
    ),
    *(
        _shape(
            collection,
            "find",
            ["_id", "metrics.*"],
            (f"_id:{direction}",),
            f"{items}(orderByMetric) after a cursor among those without the metric",
            "_id_",
            note="reads every row past the cursor",
        )
        for collection, items in (
            ("model_versions", "modelVersions"),
            ("training_jobs", "trainingJobs"),
        )
        for direction in (-1, 1)
    ),
    # ---- start-up: the precedence index over records stored before the rule
    _shape(
        "model_versions",
        "update",
        ["precedence_twin"],
        [],
        "start-up: mark records stored before the precedence rule",
        "model_name_precedence_unique (once built)",
        bounded=False,
        note=(
            "start-up only: the first start over records of an older release scans them all "
            "(no index yet); later starts find none through the precedence index, which "
            "serves $exists: false (explained on DocumentDB)"
        ),
    ),
    _shape(
        "model_versions",
        "aggregate",
        ["precedence_twin"],
        [],
        "start-up: group versions by (name, precedence) to find twins",
        "model_name_precedence_unique (once built)",
        matches_all=True,
        note=PRECEDENCE_START_UP,
    ),
    _shape(
        "model_versions",
        "find",
        ["model_name", "version_sort_key"],
        ASC,
        "start-up: the twins of one precedence (only where there are any)",
        "model_name_semver",
    ),
    _shape(
        "model_versions",
        "update",
        ["_id"],
        [],
        "start-up: a twin keeps its own id in precedence_twin",
        "_id_",
    ),
    _shape(
        "model_versions",
        "aggregate",
        [],
        [],
        "modelVersions { totalCount }, no filter",
        "_id_",
        bounded=False,
        note="a count of everything reads everything",
    ),
    *(
        _shape("model_versions", "aggregate", [field], [], f"totalCount (filter: {field})", index)
        for field, index in VERSION_FILTERS.items()
    ),
    # ---- the list of models (model_catalog: one document per model name, _id the name)
    _shape("model_catalog", "update", ["_id"], [], "registerModelVersion (name, if new)", "_id_"),
    _shape("model_catalog", "find", ["_id"], [], "start-up: back-fill done?", "_id_"),
    _shape("model_catalog", "find", ["_id"], ["_id:1"], "models(first, after)", "_id_"),
    _shape(
        "model_catalog",
        "aggregate",
        ["_id"],
        [],
        "models { totalCount }; nameContains scans the names (one document per model)",
        "_id_",
    ),
    _shape(
        "model_versions",
        "aggregate",
        ["model_name"],
        [],
        "models { versionCount lastDeployedDate } (the page's names only)",
        "model_name_version_unique",
    ),
    _shape(
        "model_versions",
        "aggregate",
        [],
        [],
        "start-up, once per database: the names registered before the list of models",
        "_id_",
        bounded=False,
        matches_all=True,
        note="reads every version once, then never again (a marker records it)",
    ),
    _shape(
        "model_versions",
        "find",
        ["model_name", "version_sort_key"],
        ["_id:-1"],
        "models { latestVersion } (the page's names, each at its highest precedence)",
        "model_name_semver",
    ),
    # ---- resolveModelVersion: a name's versions by precedence, highest first
    _shape(
        "model_versions",
        "find",
        ["model_name", "status"],
        ["version_sort_key:-1", "_id:-1"],
        "resolveModelVersion(modelName, range) (pages of 100 until one matches)",
        "model_name_semver",
    ),
    # ---- lineage of deployable versions (source_job_id)
    _shape(
        "model_versions",
        "find",
        ["source_job_id"],
        ["created_date:-1", "_id:-1"],
        "TrainingJob.producedModelVersions (batched)",
        "source_job_id",
    ),
    _shape(
        "model_versions",
        "aggregate",
        ["source_job_id"],
        [],
        "registerModelVersion(sourceJobId): the versions-per-job limit",
        "source_job_id",
    ),
    # ---- production pointers (model_registry: one document per model name, _id the name)
    _shape(
        "model_registry",
        "find",
        ["_id"],
        [],
        "productionModelVersion, deployments, archive",
        "_id_",
    ),
    _shape("model_registry", "insert", [], [], "first deployment of a name", "_id_ (unique)"),
    _shape(
        "model_registry",
        "findAndModify",
        ["_id", "revision"],
        [],
        "move the pointer (compare-and-set): deploy, archive, undo",
        "_id_",
    ),
    _shape(
        "model_registry",
        "findAndModify",
        ["_id", "revision", "held"],
        [],
        "move the pointer to a version that never held it (promotion)",
        "_id_",
    ),
    _shape(
        "model_registry",
        "findAndModify",
        ["_id"],
        [],
        "setModelAlias, deleteModelAlias (compare-and-set on the alias's field)",
        "_id_",
    ),
    _shape(
        "model_registry",
        "update",
        ["_id"],
        [],
        "a displaced holder that never reached production",
        "_id_",
    ),
    _shape(
        "model_registry",
        "find",
        ["pending_event.occurred_at"],
        ["pending_event.occurred_at:1"],
        "the outbox sweep: alias moves left without their event",
        "alias_pending_occurred_at (sparse: only names with a pending alias event)",
    ),
    # ---- change log (events: _id is the sequence number) and its counter
    _shape("events", "insert", [], [], "every change (append), seal", "_id_ (unique)"),
    _shape(
        "events",
        "find",
        ["event_id"],
        [],
        "append retried after a lost reply; a relay of another's change (is it logged?)",
        "event_id_unique",
    ),
    _shape("events", "find", ["_id"], [], "seal (was the hole filled?)", "_id_"),
    _shape("events", "find", ["_id"], ["_id:1"], "live feed poll, subscription catch-up", "_id_"),
    _shape(
        "events", "find", ["_id"], ["_id:-1"], "head of the log (window below the counter)", "_id_"
    ),
    _shape(
        "events",
        "find",
        [],
        ["_id:-1"],
        "head of an empty or tiny log",
        "_id_",
        bounded=False,
        note="only when the counter says the log is shorter than the window",
    ),
    _shape(
        "events",
        "find",
        ["_id", "occurred_at"],
        ["_id:1"],
        "retention: the first event young enough to keep (a range of at most one batch)",
        "_id_",
    ),
    _shape("events", "delete", ["_id"], [], "retention: delete up to the floor", "_id_"),
    _shape("events", "find", ["entity_id"], ["_id:1"], "trainingJob { history }", "entity_seq"),
    _shape("events", "aggregate", ["entity_id"], [], "history { totalCount }", "entity_seq"),
    _shape(
        "events",
        "find",
        ["model_name", "_id"],
        ["_id:1"],
        "modelHistory(modelName)",
        "model_name_seq",
    ),
    _shape(
        "events", "aggregate", ["model_name"], [], "modelHistory { totalCount }", "model_name_seq"
    ),
    _shape("counters", "findAndModify", ["_id"], [], "next sequence number", "_id_"),
    _shape("counters", "find", ["_id"], [], "head of the log (counter), retention floor", "_id_"),
    _shape(
        "counters",
        "update",
        ["_id"],
        [],
        "counter catch-up after collisions, retention raising the floor",
        "_id_",
    ),
    # ---- metric series (metric_buckets: one document per job x key x step range; the job
    # document carries the series lease and counters: storage/mongo/metric_series.py)
    _shape(
        "metric_buckets",
        "find",
        ["_id"],
        [],
        "reportTrainingMetrics(points) (the buckets it touches); opening buckets",
        "_id_",
    ),
    _shape("metric_buckets", "insert", [], [], "a point in a new bucket", "_id_ (unique)"),
    _shape(
        "metric_buckets",
        "update",
        ["_id", "w"],
        [],
        "a bucket rewritten with new points (conditional on its last write)",
        "_id_",
    ),
    _shape(
        "metric_buckets",
        "update",
        ["_id", "w", "last.0"],
        [],
        "points appended past a bucket's last step (an update pipeline, upsert)",
        "_id_",
    ),
    _shape(
        "metric_summaries",
        "find",
        ["job_id", "b"],
        [],
        "metricSeries (all keys): bucket summaries of a step range",
        "summary_job_key_bucket",
    ),
    _shape(
        "metric_summaries",
        "find",
        ["job_id", "key", "b"],
        [],
        "metricSeries(keys): bucket summaries of a step range",
        "summary_job_key_bucket",
    ),
    _shape(
        "metric_summaries",
        "update",
        ["_id", "w"],
        [],
        "a bucket's summary copy, unless a newer one is there (upsert)",
        "_id_",
    ),
    _shape(
        "metric_buckets",
        "aggregate",
        ["job_id"],
        [],
        "a write after a writer died mid-call recounts the job's series",
        "job_key_bucket",
    ),
    _shape(
        "metric_buckets",
        "find",
        ["job_id", "w"],
        [],
        "trainingMetricUpdates: points written after the cursor; the summary copies to "
        "rewrite after a writer died",
        "job_write_seq",
    ),
    _shape(
        "training_jobs",
        "findAndModify",
        ["_id", "status", "metric_lease", "metric_lease.until"],
        [],
        "reportTrainingMetrics(points, series): the job's series lease (an update pipeline)",
        "_id_",
    ),
    _shape(
        "training_jobs",
        "findAndModify",
        ["_id", "metric_lease.seq"],
        [],
        "reportTrainingMetrics(points): commit (latest values, counters, lease released)",
        "_id_",
    ),
    _shape(
        "training_jobs",
        "update",
        ["_id", "metric_lease.seq"],
        [],
        "reportTrainingMetrics(points) refused or failed: release the lease",
        "_id_",
    ),
    # ---- webhooks (storage/mongo/webhooks.py)
    _shape("webhooks", "insert", [], [], "createWebhook", "_id_ (unique)"),
    _shape("webhooks", "find", ["_id"], [], "a webhook (mutations, the delivering task)", "_id_"),
    _shape(
        "webhooks",
        "find",
        [],
        [],
        "webhooks; the delivering instance's list",
        "_id_",
        bounded=False,
        note="at most MAX_WEBHOOKS (100) documents, all wanted",
        matches_all=True,
    ),
    _shape(
        "webhooks",
        "aggregate",
        [],
        [],
        "createWebhook: how many are stored (the limit)",
        "_id_",
        bounded=False,
        note="counts at most MAX_WEBHOOKS (100) documents",
        matches_all=True,
    ),
    _shape(
        "webhooks",
        "findAndModify",
        ["_id"],
        [],
        "updateWebhook, replayWebhook, deleteWebhook",
        "_id_",
    ),
    _shape(
        "webhooks",
        "update",
        ["_id", "rev", "cursor"],
        [],
        "the delivering task moves the cursor (at the revision it read)",
        "_id_",
    ),
    _shape(
        "webhook_deliveries",
        "update",
        ["_id"],
        [],
        "each delivery attempt (its log entry, upsert)",
        "_id_",
    ),
    _shape("webhook_deliveries", "find", ["_id"], [], "redeliverWebhookDelivery", "_id_"),
    _shape(
        "webhook_deliveries",
        "find",
        ["webhook_id"],
        ["created_at:-1", "_id:-1"],
        "Webhook.deliveries (newest first)",
        "delivery_webhook_newest",
    ),
    _shape(
        "webhook_deliveries",
        "find",
        ["webhook_id", "status"],
        ["created_at:-1", "_id:-1"],
        "Webhook.deliveries(status:)",
        "delivery_webhook_status_newest",
    ),
    _shape(
        "webhook_deliveries",
        "find",
        ["webhook_id"],
        [],
        "Webhook.deliveries(first: 0): whether any",
        "delivery_webhook_newest",
    ),
    _shape(
        "webhook_deliveries",
        "aggregate",
        ["webhook_id"],
        [],
        "Webhook.deliveries { totalCount }",
        "delivery_webhook_newest",
    ),
    _shape(
        "webhook_deliveries",
        "aggregate",
        ["webhook_id", "status"],
        [],
        "Webhook.deliveries(status:) { totalCount }",
        "delivery_webhook_status_newest",
    ),
    _shape(
        "webhook_deliveries",
        "delete",
        ["webhook_id"],
        [],
        "deleteWebhook: its delivery log",
        "delivery_webhook_newest",
    ),
    _shape(
        "webhook_deliveries",
        "delete",
        ["_id"],
        [],
        "retention: a webhook's entries of deleted events (a range of its ids)",
        "_id_",
    ),
    _shape(
        "webhook_deliveries",
        "find",
        ["_id"],
        ["created_at:-1", "_id:-1"],
        "retention: the oldest test ping kept (a range of the webhook's ping ids)",
        "_id_",
    ),
    _shape(
        "webhook_deliveries",
        "delete",
        ["_id", "created_at"],
        [],
        "retention: the webhook's older test pings",
        "_id_",
    ),
    # ---- update claims (the guard, FerretDB v1 only)
    _shape("update_claims", "insert", [], [], "claim a revision (guard)", "_id_ (unique)"),
    _shape("update_claims", "find", ["_id"], [], "who holds a claim (guard)", "_id_"),
    _shape("update_claims", "delete", ["_id"], [], "release a claim (guard)", "_id_"),
    _shape("update_claims", "delete", ["_id", "at"], [], "clear a stale claim (guard)", "_id_"),
)


#: Fields under these take a client's key (a metric, a hyperparameter path): one shape each.
KEYED_FIELDS = ("metrics.", "hyperparameters.")


def _field(key: str) -> str:
    """``metrics.val_acc`` -> ``metrics.*``: no index serves a key of the client's choosing."""
    for prefix in KEYED_FIELDS:
        if key.startswith(prefix):
            return prefix + "*"
    return key


def filter_fields(query: Mapping[str, Any]) -> frozenset[str]:
    """The fields a filter constrains, through ``$and``/``$or``/``$nor``. A ``$regex``
    condition adds ``<field>~`` too (a substring search reads every entry, where ``$in`` on
    the same field is served by its index)."""
    fields: set[str] = set()
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            for branch in value:
                fields |= filter_fields(branch)
        elif not key.startswith("$"):
            fields.add(_field(key))
            if isinstance(value, Mapping) and "$regex" in value:
                fields.add(f"{_field(key)}~")
    return frozenset(fields)


def _sort(sort: Mapping[str, Any] | None) -> tuple[str, ...]:
    return tuple(f"{_field(field)}:{int(direction)}" for field, direction in (sort or {}).items())


def shape_of(command: Mapping[str, Any]) -> ShapeKey | None:
    """The shape of a command as the driver sends it; None for commands that are no query."""
    name = next(iter(command), "")
    if name not in QUERY_COMMANDS:
        return None
    collection = str(command[name])
    if name == "find":
        return ShapeKey(
            collection, name, filter_fields(command.get("filter", {})), _sort(command.get("sort"))
        )
    if name == "findAndModify":
        return ShapeKey(
            collection, name, filter_fields(command.get("query", {})), _sort(command.get("sort"))
        )
    if name == "aggregate":
        stages = command.get("pipeline", [])
        match = stages[0].get("$match", {}) if stages else {}
        return ShapeKey(collection, name, filter_fields(match), ())
    if name == "count":
        return ShapeKey(collection, name, filter_fields(command.get("query", {})), ())
    if name in ("update", "delete"):
        statements = command.get("updates" if name == "update" else "deletes", [])
        fields = frozenset().union(*(filter_fields(s.get("q", {})) for s in statements))
        return ShapeKey(collection, name, fields, ())
    return ShapeKey(collection, name, frozenset(), ())  # insert


def declared(key: ShapeKey, shapes: Iterable[QueryShape] = SHAPES) -> QueryShape | None:
    """The most specific listed shape that covers ``key``."""
    covering = [s for s in shapes if s.covers(key)]
    return max(covering, key=lambda s: len(s.filter)) if covering else None


def markdown_table(shapes: Iterable[QueryShape] = SHAPES) -> str:
    """The table in docs/real-server.md: ``python -m graphql_api.storage.mongo.query_shapes``.
    Shapes that differ only in their ordering share a row."""
    rows: dict[tuple[Any, ...], list[str]] = {}
    for s in shapes:
        key = (
            s.collection,
            s.command,
            ", ".join(sorted(s.filter)) or "-",
            s.used_by,
            s.index,
            s.bounded,
            s.note,
        )
        rows.setdefault(key, []).append(" ".join(s.sort).replace(":", " ") or "-")
    lines = [
        "| collection | command | filter on | sort | used by | index "
        "| reads the whole collection |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (collection, command, fields, used_by, index, bounded, note), sorts in rows.items():
        whole = f"**yes**: {note}" if not bounded else (f"no ({note})" if note else "no")
        lines.append(
            f"| {collection} | {command} | {fields} | {'; '.join(sorts)} | {used_by} "
            f"| `{index}` | {whole} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
