"""Semantic Versioning 2.0.0: parsing and a sort key that orders by precedence.

MongoDB can only sort by stored values, so every version is stored with ``version_sort_key``:
a string whose plain byte order is SemVer precedence order (build metadata is ignored, as the
spec says). The encoding:

* major, minor, patch: two-digit length then the digits (so 10 sorts after 9);
* then ``~`` for a release, or ``-`` and the pre-release identifiers for a pre-release
  (``-`` sorts before ``~``, so 1.0.0-rc.1 < 1.0.0);
* pre-release identifiers joined with ``!`` (below every identifier character, so a shorter
  list sorts first); a numeric identifier is ``0`` + two-digit length + digits and an
  alphanumeric one ``1`` + itself, so numeric identifiers sort before alphanumeric ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

# The regular expression suggested by semver.org, matched with ``fullmatch``: its ``^...$``
# form let "1.0.0\n" through, because ``$`` also matches before a trailing newline.
_SEMVER = re.compile(
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    # ASCII: in a str pattern ``\d`` also matches other scripts' digits ("1\u0661.0.0"), which
    # ``int`` accepts too, so two different strings would have one precedence.
    re.ASCII,
)

MAX_VERSION_LENGTH = 128
_MAX_NUMBER_DIGITS = 99


@total_ordering
@dataclass(frozen=True, slots=True)
class SemVer:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str | None = None

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``text`` or raise ``ValueError`` saying what is wrong."""
        if len(text) > MAX_VERSION_LENGTH:
            raise ValueError(f"must be at most {MAX_VERSION_LENGTH} characters")
        match = _SEMVER.fullmatch(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a Semantic Versioning 2.0.0 version (MAJOR.MINOR.PATCH"
                "[-PRERELEASE][+BUILD], no leading zeros, e.g. 1.4.0 or 2.0.0-rc.1)"
            )
        numbers = [match["major"], match["minor"], match["patch"]]
        pre = tuple(match["pre"].split(".")) if match["pre"] else ()
        if any(len(n) > _MAX_NUMBER_DIGITS for n in numbers + [p for p in pre if p.isdigit()]):
            raise ValueError(f"numeric parts must have at most {_MAX_NUMBER_DIGITS} digits")
        return cls(int(numbers[0]), int(numbers[1]), int(numbers[2]), pre, match["build"])

    @classmethod
    def parse_stored(cls, text: str) -> SemVer:
        """Parse a version read back from storage.

        Versions stored before the anchor fix may end with one newline (the old pattern let
        "1.0.0\\n" through); they keep loading, with the precedence of the version without it.
        """
        return cls.parse(text.removesuffix("\n"))

    @property
    def sort_key(self) -> str:
        core = "".join(_number_key(n) for n in (self.major, self.minor, self.patch))
        if not self.prerelease:
            return core + "~"
        return core + "-" + "!".join(_identifier_key(i) for i in self.prerelease)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.sort_key < other.sort_key

    def __eq__(self, other: object) -> bool:
        # Build metadata does not take part in precedence.
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.sort_key == other.sort_key

    def __hash__(self) -> int:
        return hash(self.sort_key)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def _number_key(number: int) -> str:
    digits = str(number)
    return f"{len(digits):02d}{digits}"


def _identifier_key(identifier: str) -> str:
    if identifier.isdigit():
        return "0" + _number_key(int(identifier))
    return "1" + identifier


def version_sort_key(text: str) -> str:
    return SemVer.parse(text).sort_key
