"""Records to MongoDB documents and back, derived from the domain models' fields.

A document holds every field of its model under the field's own name (the key field under
``_id``), so a field added to a model is stored and read back with no edit here. The names only
storage uses are declared once, in ``STORAGE_FIELDS``; no model field may take one of them (a
unit test checks).

Reads trust what this module wrote: they rebuild models with ``model_construct``, without
re-running validation (the hot path of every list query), and restore only what BSON loses,
decided once per model from its field annotations: the UTC zone of datetimes, and enums from
their stored values. A field missing from a document written before the field existed takes the
model's default.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.semver import version_sort_key

#: Document fields that are not model fields: storage's own bookkeeping.
STORAGE_FIELDS: Mapping[str, str] = {
    "_id": "the record's key (the model's key field is stored under it)",
    "rev": "revision, bumped by every update (see collection.UpdateGuard)",
    "version_sort_key": "SemVer precedence as a sortable string (model versions)",
    "precedence_twin": "'' or the id of a pre-existing equal-precedence twin (model versions)",
    "production_revision": "pointer revision at which a version reached production",
    "pending_event": "the change whose event is not yet in the log (storage/mongo/outbox.py)",
    "production_slot": "legacy: written before the production pointer; nothing reads it",
}

M = TypeVar("M", bound=BaseModel)
#: Turns a value as BSON gives it back into the value the model holds.
Restore = Callable[[Any], Any]


def _utc(value: datetime) -> datetime:
    # MongoDB stores UTC; both backends hand it back naive (client.py).
    return value.replace(tzinfo=UTC)


def unwrap_annotation(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``Annotated`` and ``| None``, and whether None is allowed."""
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            nullable = nullable or len(members) < len(typing.get_args(annotation))
            if len(members) != 1:
                return annotation, nullable
            annotation = members[0]
        else:
            return annotation, nullable


def _restorer(annotation: Any) -> Restore | None:
    """What a read must do to a stored value of this type (None: use it as it is)."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        item, _ = unwrap_annotation(item)
        if isinstance(item, type) and issubclass(item, BaseModel):
            # A list of small records (a version's tags): stored as documents, rebuilt trusted.
            construct = item.model_construct
            return lambda values: [construct(**value) for value in values]
    if isinstance(annotation, type):
        if issubclass(annotation, datetime):
            return _utc
        if issubclass(annotation, Enum):
            return _MembersByValue(annotation).__getitem__
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, Enum):
            # A list of enum members (a job's retryOn): each from its stored value.
            member = _MembersByValue(item).__getitem__
            return lambda values: [member(v) for v in values]
    return None


class _MembersByValue(dict[Any, Enum]):
    """An enum's members by value: a dict lookup instead of the enum's call (a third of the
    cost of rebuilding a record from its document, measured). A value that is no member's
    goes to the enum itself, which raises ValueError as the plain call would."""

    def __init__(self, enum: type[Enum]) -> None:
        super().__init__((member.value, member) for member in enum)
        self._enum = enum

    def __missing__(self, value: Any) -> Enum:
        return self._enum(value)


def _stored(value: Any) -> Any:
    """A model field's value as a document holds it: enums by value, records as documents."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return [item.model_dump(mode="python") for item in value]
    return value


@dataclass(frozen=True)
class _Field:
    name: str
    stored_as: str
    restore: Restore | None
    #: None is a value the field takes; for other fields a stored None means "not set".
    nullable: bool
    is_enum: bool


@dataclass(frozen=True)
class RecordMapping(Generic[M]):
    """How records of ``model`` are stored: every model field under its name, ``key`` under
    ``_id``, plus the storage-only ``derived`` fields computed from the record on insert."""

    model: type[M]
    key: str
    derived: Mapping[str, Callable[[M], Any]] = field(default_factory=dict)
    _fields: tuple[_Field, ...] = field(init=False)
    #: The compiled ``from_doc`` (see ``_compile_reader``).
    _read: Callable[[Mapping[str, Any]], M] = field(init=False)

    def __post_init__(self) -> None:
        fields = []
        for name, info in self.model.model_fields.items():
            plain, nullable = unwrap_annotation(info.annotation)
            restore = _restorer(plain)
            fields.append(
                _Field(
                    name=name,
                    stored_as="_id" if name == self.key else name,
                    restore=restore,
                    nullable=nullable,
                    is_enum=isinstance(plain, type) and issubclass(plain, Enum),
                )
            )
        object.__setattr__(self, "_fields", tuple(fields))
        object.__setattr__(self, "_read", _compile_reader(self.model, self._fields))

    def stored_name(self, name: str) -> str:
        """The document field that holds model field ``name``."""
        return "_id" if name == self.key else name

    def stored_values(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Model field values as an update stores them: keyed by document field, enums by
        value."""
        return {self.stored_name(name): _stored(value) for name, value in fields.items()}

    def field_values(self, record: M) -> dict[str, Any]:
        """The record's fields as stored (enums by value), keyed by document field."""
        dumped = record.model_dump(mode="python")
        doc: dict[str, Any] = {}
        for f in self._fields:
            value = dumped[f.name]
            doc[f.stored_as] = value.value if f.is_enum and value is not None else value
        return doc

    def to_doc(self, record: M) -> dict[str, Any]:
        """A new record's document, revision 0."""
        doc = self.field_values(record)
        for name, compute in self.derived.items():
            doc[name] = compute(record)
        doc["rev"] = 0
        return doc

    def from_doc(self, doc: Mapping[str, Any]) -> M:
        return self._read(doc)


def _compile_reader(model: type[M], fields: Sequence[_Field]) -> Callable[[Mapping[str, Any]], M]:
    """``from_doc`` for ``model``, written out as one call with a keyword per field, as one
    would by hand, and compiled once (as ``dataclasses`` does). It runs for every record of
    every list: a loop over the fields that filled a dict first cost about 9% more per record
    (paired in one process on the mock's documents: jobs 8.0 -> 8.7 us, versions 5.8 ->
    6.3 us); this form measures the same as the hand-written mapping it replaced."""
    scope: dict[str, Any] = {
        "construct": model.model_construct,
        "new": model.__new__,
        "model": model,
        "set_attribute": object.__setattr__,
        # model_construct's fields_set: the names it was given, here every field.
        "every_field": frozenset(f.name for f in fields),
    }
    arguments = []
    for i, f in enumerate(fields):
        info = model.model_fields[f.name]
        restored = "v" if f.restore is None else f"restore_{i}(v)"
        scope[f"restore_{i}"] = f.restore
        if info.is_required():
            # Written by every version of this module: a document without it is not ours.
            value = f"({restored} if (v := doc[{f.stored_as!r}]) is not None else None)"
        else:
            scope[f"default_{i}"] = _default_of(model, f.name)
            # A stored None of a nullable field is a value; a missing field (a document
            # written before the field existed) takes the model's default.
            absent = (
                f"(None if {f.stored_as!r} in doc else default_{i}())"
                if f.nullable
                else (f"default_{i}()")
            )
            value = f"({restored} if (v := get({f.stored_as!r})) is not None else {absent})"
        arguments.append(f"        {f.name!r}: {value},")
    if _plain_construct_is_exact(model, fields):
        # What model_construct does with every field given, without its per-field loop over
        # aliases, defaults and the given values (half of a record's mapping cost; see
        # bench/README.md "Driver move"): the instance's __dict__, its fields set, and no
        # extra or private values.
        body = [
            "    record = new(model)",
            "    set_attribute(record, '__dict__', {",
            *arguments,
            "    })",
            "    set_attribute(record, '__pydantic_fields_set__', set(every_field))",
            "    set_attribute(record, '__pydantic_extra__', None)",
            "    set_attribute(record, '__pydantic_private__', None)",
            "    return record",
        ]
    else:
        body = ["    return construct(**{", *arguments, "    })"]
    source = "\n".join(["def from_doc(doc):", "    get = doc.get", *body])
    exec(source, scope)
    reader: Callable[[Mapping[str, Any]], M] = scope["from_doc"]
    return reader


def _plain_construct_is_exact(model: type[BaseModel], fields: Sequence[_Field]) -> bool:
    """Whether ``model_construct`` given every field (by name) only fills ``__dict__`` in field
    order and marks every field set: no aliases to look up, no post-init hook or private
    attributes, not a root model, no extra values kept."""
    infos = model.model_fields
    return (
        [f.name for f in fields] == list(infos)
        and all(i.alias is None and i.validation_alias is None for i in infos.values())
        and not model.__pydantic_root_model__
        and model.__pydantic_post_init__ is None
        and not model.__private_attributes__
        and model.model_config.get("extra") != "allow"
    )


def _default_of(model: type[BaseModel], name: str) -> Callable[[], Any]:
    info = model.model_fields[name]
    return lambda: info.get_default(call_default_factory=True, validated_data={})


MODEL_VERSIONS: RecordMapping[ModelVersion] = RecordMapping(
    ModelVersion,
    key="model_id",
    derived={
        "version_sort_key": lambda v: version_sort_key(v.version),
        # "" for every new record; see MongoModelVersionStore._ensure_precedence_unique.
        "precedence_twin": lambda _: "",
    },
)
TRAINING_JOBS: RecordMapping[TrainingJob] = RecordMapping(TrainingJob, key="job_id")


#: Event fields only some kinds carry (registry moves): left out of the others' documents,
#: which keep the shape they had before these fields existed.
_EVENT_OPTIONAL = ("alias", "previous_model_id", "reason")


def event_to_doc(event: ChangeEvent) -> dict[str, Any]:
    doc = event.model_dump(mode="python")
    for optional in _EVENT_OPTIONAL:
        if doc[optional] is None:
            del doc[optional]
    doc["_id"] = doc.pop("seq")
    doc["entity"] = event.entity.value
    doc["kind"] = event.kind.value
    return doc


def event_from_doc(doc: dict[str, Any]) -> ChangeEvent:
    snapshot = dict(doc["snapshot"])
    for key, value in snapshot.items():
        if isinstance(value, datetime):
            snapshot[key] = _utc(value)
    return ChangeEvent.model_construct(
        seq=doc["_id"],
        entity=EntityKind(doc["entity"]),
        entity_id=doc["entity_id"],
        kind=ChangeKind(doc["kind"]),
        previous_status=doc.get("previous_status"),
        status=doc["status"],
        occurred_at=_utc(doc["occurred_at"]),
        model_id=doc["model_id"],
        model_name=doc.get("model_name"),
        actor=doc.get("actor"),
        snapshot=snapshot,
        event_id=doc.get("event_id"),
        alias=doc.get("alias"),
        previous_model_id=doc.get("previous_model_id"),
        reason=doc.get("reason"),
    )
