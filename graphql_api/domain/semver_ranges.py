"""Version ranges with npm's semantics (node-semver's README, "Ranges"): what
``resolveModelVersion(modelName, range)`` matches.

A range is a set of comparator sets joined by ``||``; a version matches when it satisfies every
comparator of at least one set. Sugar desugars to comparators exactly as node-semver does:

* primitives ``<``, ``<=``, ``>``, ``>=``, ``=`` (or none) with full or partial versions:
  ``>1.2`` is ``>=1.3.0``, ``<=1.2`` is ``<1.3.0-0``, ``1.2`` is ``>=1.2.0 <1.3.0-0``;
* X-ranges ``*``, ``x``, ``1.x``, ``1.2.X``, and the empty range: any version;
* tilde ``~1.2.3`` = ``>=1.2.3 <1.3.0-0``, ``~1.2`` = ``>=1.2.0 <1.3.0-0``, ``~1`` =
  ``>=1.0.0 <2.0.0-0`` (``~>`` is the same);
* caret ``^1.2.3`` = ``>=1.2.3 <2.0.0-0``, ``^0.2.3`` = ``>=0.2.3 <0.3.0-0``, ``^0.0.3`` =
  ``>=0.0.3 <0.0.4-0``; missing parts are zero-filled and treated as flexible (``^1.x`` =
  ``>=1.0.0 <2.0.0-0``, ``^0.0`` = ``>=0.0.0 <0.1.0-0``, ``^0.x`` = ``>=0.0.0 <1.0.0-0``);
* hyphen ``1.2.3 - 2.3.4`` = ``>=1.2.3 <=2.3.4``; a partial upper end is inclusive of its
  whole range (``1.2.3 - 2.3`` = ``>=1.2.3 <2.4.0-0``).

Pre-releases only when asked: a version with a pre-release tag (``1.5.0-rc.1``) matches a set
only if some comparator of that set names a pre-release of the same major.minor.patch
(``>=1.5.0-rc.0``), or when ``include_prerelease`` is set, which also makes the sugar's lower
bounds include pre-releases, as node-semver's ``includePrerelease`` does. Build metadata is
ignored throughout. Anything else (``~>=1``, ``1.2.3.4``, ``>=a``) is refused with a message.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from graphql_api.domain.semver import SemVer

MAX_RANGE_LENGTH = 256
MAX_COMPARATORS = 32

_NUMBER = r"0|[1-9]\d*"
_XR = rf"[xX*]|{_NUMBER}"
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_PARTIAL = (
    rf"v?(?P<major>{_XR})(?:\.(?P<minor>{_XR})(?:\.(?P<patch>{_XR})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?)?)?"
)
_SIMPLE = re.compile(rf"(?P<op>~>|~|\^|<=|>=|<|>|=)?{_PARTIAL}", re.ASCII)
_HYPHEN = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")
_OPERATOR_SPACE = re.compile(r"(~>|~|\^|<=|>=|<|>|=)\s+")

_TESTS: dict[str, Callable[[SemVer, SemVer], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Comparator:
    op: str
    version: SemVer

    def test(self, version: SemVer) -> bool:
        return _TESTS[self.op](version, self.version)

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


ComparatorSet = tuple[Comparator, ...]


@dataclass(frozen=True)
class VersionRange:
    """Comparator sets joined by ``||`` (an empty set matches every version)."""

    text: str
    sets: tuple[ComparatorSet, ...]

    def matches(self, version: SemVer, include_prerelease: bool = False) -> bool:
        return any(_test_set(s, version, include_prerelease) for s in self.sets)

    def __str__(self) -> str:
        return " || ".join(" ".join(map(str, s)) or "*" for s in self.sets)


def parse_range(text: str, include_prerelease: bool = False) -> VersionRange:
    """The range ``text`` means; ``ValueError`` saying what is wrong if it is not one."""
    if len(text) > MAX_RANGE_LENGTH:
        raise ValueError(f"must be at most {MAX_RANGE_LENGTH} characters")
    if not text.isascii() or not text.isprintable():
        raise ValueError("must be printable ASCII (e.g. ^1.4, ~2.0.1, >=1.2.0 <2.0.0, 1.x)")
    sets = tuple(_parse_set(part, include_prerelease) for part in text.split("||"))
    if sum(len(s) for s in sets) > MAX_COMPARATORS:
        raise ValueError(f"at most {MAX_COMPARATORS} comparators")
    return VersionRange(text, sets)


def _parse_set(text: str, include_prerelease: bool) -> ComparatorSet:
    hyphen = _HYPHEN.match(text)
    if hyphen:
        low, high = (_partial(p, text) for p in hyphen.groups())
        return (*_low_bound(low, include_prerelease), *_high_bound(high))
    comparators: list[Comparator] = []
    for token in _OPERATOR_SPACE.sub(r"\1", text.strip()).split():
        match = _SIMPLE.fullmatch(token)
        if match is None:
            raise ValueError(
                f"{token!r} is not a comparator: use a version or partial version (1, 1.2, "
                "1.2.3, 1.x), optionally after one of ^ ~ < <= > >= =, or a range A - B"
            )
        comparators.extend(_desugar(match["op"] or "", _Partial.of(match), include_prerelease))
    return tuple(comparators)


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: tuple[str, ...]

    @classmethod
    def of(cls, match: re.Match[str]) -> _Partial:
        parts = [match["major"], match["minor"], match["patch"]]
        numbers: list[int | None] = []
        for part in parts:
            if part is None or part in ("x", "X", "*") or (numbers and numbers[-1] is None):
                numbers.append(None)  # an X, or anything after one, is a wildcard
            else:
                numbers.append(int(part))
        pre = tuple(match["pre"].split(".")) if match["pre"] else ()
        return cls(numbers[0], numbers[1], numbers[2], pre)

    def at(self, pre: tuple[str, ...] | None = None) -> SemVer:
        return SemVer(
            self.major or 0, self.minor or 0, self.patch or 0, self.pre if pre is None else pre
        )


def _partial(text: str, whole: str) -> _Partial:
    match = _SIMPLE.fullmatch(text)
    if match is None or match["op"]:
        raise ValueError(f"{whole.strip()!r}: both ends of a hyphen range must be versions")
    return _Partial.of(match)


_ZERO = ("0",)  # the lowest pre-release: <2.0.0-0 excludes 2.0.0's pre-releases too


def _floor(p: _Partial, include_prerelease: bool) -> SemVer:
    return p.at(p.pre or (_ZERO if include_prerelease else ()))


def _low_bound(p: _Partial, include_prerelease: bool) -> list[Comparator]:
    if p.major is None:
        return []
    return [Comparator(">=", _floor(p, include_prerelease))]


def _high_bound(p: _Partial) -> list[Comparator]:
    if p.major is None:
        return []
    if p.minor is None:
        return [Comparator("<", SemVer(p.major + 1, 0, 0, _ZERO))]
    if p.patch is None:
        return [Comparator("<", SemVer(p.major, p.minor + 1, 0, _ZERO))]
    return [Comparator("<=", p.at())]


def _desugar(op: str, p: _Partial, include_prerelease: bool) -> list[Comparator]:
    if op in ("~", "~>"):
        return _tilde(p, include_prerelease)
    if op == "^":
        return _caret(p, include_prerelease)
    if p.major is None:  # *, x, and X with any operator: every version (or none for < and >)
        if op in ("<", ">"):
            return [Comparator("<", SemVer(0, 0, 0, _ZERO))]
        return []
    if p.minor is None or p.patch is None:
        return _partial_primitive(op, p, include_prerelease)
    return [Comparator(op or "=", p.at())]


def _partial_primitive(op: str, p: _Partial, include_prerelease: bool) -> list[Comparator]:
    major = p.major or 0
    minor = p.minor
    next_up = (
        SemVer(major + 1, 0, 0, _ZERO) if minor is None else SemVer(major, minor + 1, 0, _ZERO)
    )
    if op in ("", "="):
        return [Comparator(">=", _floor(p, include_prerelease)), Comparator("<", next_up)]
    if op == ">":  # above the whole partial range
        return [Comparator(">=", SemVer(next_up.major, next_up.minor, 0))]
    if op == "<=":
        return [Comparator("<", next_up)]
    if op == "<":
        return [Comparator("<", SemVer(major, minor or 0, 0, _ZERO))]
    return [Comparator(">=", _floor(p, include_prerelease))]  # >=


def _tilde(p: _Partial, include_prerelease: bool) -> list[Comparator]:
    if p.major is None:
        return []
    if p.minor is None:
        return [
            Comparator(">=", _floor(p, include_prerelease)),
            Comparator("<", SemVer(p.major + 1, 0, 0, _ZERO)),
        ]
    return [
        Comparator(">=", _floor(p, include_prerelease)),
        Comparator("<", SemVer(p.major, p.minor + 1, 0, _ZERO)),
    ]


def _caret(p: _Partial, include_prerelease: bool) -> list[Comparator]:
    if p.major is None:
        return []
    low = Comparator(">=", _floor(p, include_prerelease))
    if p.major > 0 or p.minor is None:
        return [low, Comparator("<", SemVer(p.major + 1, 0, 0, _ZERO))]
    if p.minor > 0 or p.patch is None:
        return [low, Comparator("<", SemVer(0, p.minor + 1, 0, _ZERO))]
    return [low, Comparator("<", SemVer(0, 0, p.patch + 1, _ZERO))]


def _test_set(comparators: ComparatorSet, version: SemVer, include_prerelease: bool) -> bool:
    if not all(c.test(version) for c in comparators):
        return False
    if not version.prerelease or include_prerelease:
        return True
    # npm: a pre-release matches only a set that names a pre-release of its own
    # major.minor.patch, so ^1.4.0 never picks 1.5.0-rc.1, but >=1.5.0-rc.0 may.
    core = (version.major, version.minor, version.patch)
    return any(
        c.version.prerelease and (c.version.major, c.version.minor, c.version.patch) == core
        for c in comparators
    )
