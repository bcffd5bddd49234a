"""Tags of model versions: the output type and the input."""

from __future__ import annotations

import strawberry

from graphql_api.domain import artifacts


@strawberry.experimental.pydantic.type(
    model=artifacts.Tag, name="Tag", description="A key/value label of a model version."
)
class TagType:
    key: str = strawberry.field(description="The key: a name, each key once per version.")
    value: str = strawberry.field(description="The value: a name.")


@strawberry.input(description="A tag to set (docs/input-policy.md has the rules).")
class TagInput:
    key: str = strawberry.field(
        description=f"1-{artifacts.MAX_TAG_KEY_LENGTH} visible characters, single spaces "
        "inside, NFC; each key once per version."
    )
    value: str = strawberry.field(
        description=f"1-{artifacts.MAX_TAG_VALUE_LENGTH} visible characters, single spaces "
        "inside, NFC."
    )


def tag_pairs(tags: list[TagInput] | None) -> list[tuple[str, str]] | None:
    return None if tags is None else [(t.key, t.value) for t in tags]
