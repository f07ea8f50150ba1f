"""Retention: which versions (and which artifacts of kept versions) a policy keeps. Pure.

The planner is a function of plain values, as restic's ``forget`` is of its snapshot list: it
reads no store, no clock and no disk, so every rule is tested without one. :func:`plan` takes,
per task, its versions (commit, number, time, tags, artifacts, whether an alias protects it, on
how many remotes it is known to be) and a :class:`Policy`, and answers a
:class:`~gitstore.model.RetainPlan`: per version keep or drop with the rules that keep it, per
kept version the artifacts that expire and by which rule, and the bytes that no version left in
the plan holds any more.

The model (restic's and borg's):

* A version is kept when ANY rule keeps it. ``keep_last N``: the N newest.
  ``keep_within D``: those made within D before ``now``. ``keep_daily N`` (weekly, monthly): the
  newest version of each of the last N days (ISO weeks, months; UTC) that have versions.
  ``keep_tags``: those carrying one of the ``KEY=VALUE`` tags (an artifact's tag or a metadata
  value).
* The latest version of a task is always kept, whole; so is a version with an alias
  (``protected``), and, unless ``force``, a version known to be on fewer than ``min_copies``
  remotes.
* A rule for a content type (``types``) drops artifacts of that type, not versions: it is judged
  over the kept versions that hold such an artifact, and the artifacts of the versions it does
  not keep expire. An exact type's rule wins over a family's (``text/*``). An artifact carrying a
  tag that any keep rule of the policy names never expires, so that a second run plans nothing.

Durations read like ``12h``, ``7d``, ``2w``, ``1y`` (restic's ``1y2m3d4h`` combinations too;
``m`` is months). The store's policy comes from its git config (:func:`parse_policy`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from gitstore.errors import StoreError, UsageError
from gitstore.model import Expiry, RetainPlan, TaskPlan, VersionPlan

__all__ = [
    "ArtifactFacts",
    "Duration",
    "Policy",
    "Rules",
    "StorePolicy",
    "TaskFacts",
    "VersionFacts",
    "command_policy",
    "parse_duration",
    "parse_policy",
    "plan",
]

_DURATION = re.compile(r"(\d+)([ymwdh])")
_UNITS = "ymwdh"
# The config section that holds retention rules, and the prefixes of its per-spec and per-type
# subsections: [gitstore "retain"], [gitstore "retain.spec.NAME"], [gitstore "retain.type.MIME"],
# [gitstore "retain.spec.NAME.type.MIME"].
SECTION = "retain"
_SPEC = "retain.spec."
_TYPE = "retain.type."
_SPEC_TYPE = ".type."
# Config key (as git compares them: lower case) -> Rules field.
_COUNT_KEYS = {
    "keeplast": "keep_last",
    "keepdaily": "keep_daily",
    "keepweekly": "keep_weekly",
    "keepmonthly": "keep_monthly",
}


@dataclasses.dataclass(frozen=True)
class Duration:
    """A span of calendar time: years and months count as calendar months, the rest as hours."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0

    def before(self, when: dt.datetime) -> dt.datetime:
        """The moment this long before ``when`` (a month back from 31 March is 28/29 February)."""
        months = when.year * 12 + (when.month - 1) - self.years * 12 - self.months
        year, month = divmod(months, 12)
        month += 1
        day = min(when.day, _days_in(year, month))
        moved = when.replace(year=year, month=month, day=day)
        return moved - dt.timedelta(weeks=self.weeks, days=self.days, hours=self.hours)

    def __str__(self) -> str:
        parts = zip(
            _UNITS, (self.years, self.months, self.weeks, self.days, self.hours), strict=True
        )
        return "".join(f"{n}{unit}" for unit, n in parts if n) or "0h"


def _days_in(year: int, month: int) -> int:
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day


def parse_duration(text: str) -> Duration:
    """``12h``, ``7d``, ``2w``, ``1m`` (a month), ``1y``, or restic's combinations (``1y6m``).

    Raises:
      UsageError: anything else (the message says what a duration looks like).
    """
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    units = [u for _, u in parts]
    if (
        not parts
        or "".join(n + u for n, u in parts) != value
        or len(set(units)) != len(units)
        or units != sorted(units, key=_UNITS.index)
        or len(value) > 32
    ):
        raise UsageError(
            f"{text!r} is not a duration (a number and a unit: 12h, 7d, 2w, 6m, 1y; "
            "or several, largest first: 1y6m)"
        )
    fields = {"y": "years", "m": "months", "w": "weeks", "d": "days", "h": "hours"}
    duration = Duration(**{fields[u]: int(n) for n, u in parts})
    if duration == Duration():
        raise UsageError(f"{text!r} is an empty duration (keep-within needs more than 0)")
    return duration


@dataclasses.dataclass(frozen=True)
class Rules:
    """Keep rules; a version is kept when ANY of them keeps it. None/empty: that rule is off."""

    keep_last: int | None = None
    keep_within: Duration | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_tags: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))

    def __str__(self) -> str:
        parts = []
        if self.keep_last:
            parts.append(f"keep-last {self.keep_last}")
        if self.keep_within:
            parts.append(f"keep-within {self.keep_within}")
        for name in ("daily", "weekly", "monthly"):
            n = getattr(self, f"keep_{name}")
            if n:
                parts.append(f"keep-{name} {n}")
        parts += [f"keep-tag {k}={v}" for k, v in self.keep_tags]
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What one spec's tasks are planned with.

    Attributes:
      versions: rules that decide which versions stay; None keeps every version (only the
        ``types`` rules expire artifacts).
      types: content type (``text/x-log``) or family (``text/*``) -> rules deciding in which kept
        versions artifacts of that type stay.
      min_copies: versions known to be on fewer remotes than this are kept whole.
      force: drop versions even when they are on fewer than ``min_copies`` remotes.
    """

    versions: Rules | None = None
    types: Mapping[str, Rules] = dataclasses.field(default_factory=dict)
    min_copies: int = 0
    force: bool = False

    def __bool__(self) -> bool:
        return bool(self.versions) or any(self.types.values())


@dataclasses.dataclass(frozen=True)
class StorePolicy:
    """A store's retention policy as its config states it: a default and per-spec overrides.

    A spec's own section replaces the default's version rules (the whole set, not key by key);
    its type sections replace the default's rule for the same type. ``min_copies`` is store-wide.
    """

    default: Policy = dataclasses.field(default_factory=Policy)
    specs: Mapping[str, Policy] = dataclasses.field(default_factory=dict)

    def for_spec(self, spec: str) -> Policy:
        """The policy the tasks of ``spec`` are planned with."""
        own = self.specs.get(spec)
        if own is None:
            return self.default
        return dataclasses.replace(
            self.default,
            versions=own.versions if own.versions is not None else self.default.versions,
            types={**self.default.types, **own.types},
        )

    def __bool__(self) -> bool:
        return bool(self.default) or any(self.specs.values())


def parse_policy(sections: Mapping[str, Mapping[str, str]]) -> StorePolicy:
    """The :class:`StorePolicy` of a store's ``[gitstore "retain..."]`` config subsections.

    ``sections`` maps a subsection name of ``[gitstore "..."]`` to its keys (lower case, as git
    compares them) and values; subsections that are not about retention are ignored. Keys:
    ``keepLast``, ``keepWithin``, ``keepDaily``, ``keepWeekly``, ``keepMonthly``, ``keepTag``
    (``KEY=VALUE``; several separated by commas) and, in ``[gitstore "retain"]`` only,
    ``minCopies``.

    Raises:
      StoreError: a bad value or an unknown key, named as ``gitstore.retain.KEY``.
    """
    default_versions: Rules | None = None
    default_types: dict[str, Rules] = {}
    min_copies = 0
    spec_versions: dict[str, Rules] = {}
    spec_types: dict[str, dict[str, Rules]] = {}
    for name, keys in sections.items():
        if name == SECTION:
            extra = {k: v for k, v in keys.items() if k != "mincopies"}
            if "mincopies" in keys:
                min_copies = _count(f"gitstore.{name}.minCopies", keys["mincopies"], lo=0)
            default_versions = _rules(name, extra) if extra else None
        elif name.startswith(_TYPE):
            default_types[_mime(name, name[len(_TYPE) :])] = _rules(name, keys)
        elif name.startswith(_SPEC):
            rest = name[len(_SPEC) :]
            slash = rest.find("/")
            cut = rest.rfind(_SPEC_TYPE, 0, slash) if slash >= 0 else -1
            if cut >= 0:
                spec, mime = rest[:cut], _mime(name, rest[cut + len(_SPEC_TYPE) :])
                spec_types.setdefault(_spec(name, spec), {})[mime] = _rules(name, keys)
            else:
                spec_versions[_spec(name, rest)] = _rules(name, keys)
        elif name.startswith(SECTION + "."):
            raise StoreError(
                f'[gitstore "{name}"]: not a retention section (retain, retain.spec.SPEC, '
                "retain.type.MIME or retain.spec.SPEC.type.MIME)"
            )
    specs = {
        spec: Policy(versions=spec_versions.get(spec), types=spec_types.get(spec, {}))
        for spec in {*spec_versions, *spec_types}
    }
    default = Policy(versions=default_versions, types=default_types, min_copies=min_copies)
    return StorePolicy(default=default, specs=specs)


def _spec(section: str, spec: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec):
        raise StoreError(f'[gitstore "{section}"]: {spec!r} is not a spec name')
    return spec


def _mime(section: str, mime: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][\w.+-]*/(\*|[A-Za-z0-9][\w.+-]*)", mime):
        raise StoreError(f'[gitstore "{section}"]: {mime!r} is not a content type (TYPE/SUBTYPE)')
    return mime.lower()


def _rules(section: str, keys: Mapping[str, str]) -> Rules:
    fields: dict[str, object] = {}
    for key, raw in keys.items():
        where = f"gitstore.{section}.{key}"
        if key in _COUNT_KEYS:
            fields[_COUNT_KEYS[key]] = _count(where, raw, lo=1)
        elif key == "keepwithin":
            try:
                fields["keep_within"] = parse_duration(raw)
            except UsageError as e:
                raise StoreError(f"{where}: {e}") from None
        elif key == "keeptag":
            fields["keep_tags"] = tuple(_tag(where, t) for t in raw.split(",") if t.strip())
        else:
            known = "keepLast, keepWithin, keepDaily, keepWeekly, keepMonthly, keepTag"
            if section == SECTION:
                known += ", minCopies"
            raise StoreError(f"{where}: not a retention setting (known: {known})")
    return Rules(**fields)  # type: ignore[arg-type]  # keys checked one by one above


def _count(where: str, raw: str, *, lo: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise StoreError(f"{where} = {raw!r} is not a whole number") from None
    if value < lo:
        raise StoreError(f"{where} = {value} is below {lo}")
    return value


def _tag(where: str, text: str) -> tuple[str, str]:
    key, sep, value = text.strip().partition("=")
    if not sep or not key:
        raise StoreError(f"{where}: {text.strip()!r} is not KEY=VALUE")
    return key, value


# -- the facts the planner reads ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ArtifactFacts:
    """One artifact of a version: its name, blob, size, content type and tags."""

    name: str
    oid: str
    size: int
    content_type: str
    tags: frozenset[tuple[str, str]] = frozenset()


@dataclasses.dataclass(frozen=True)
class VersionFacts:
    """One version of a task, as the planner needs it.

    Attributes:
      tags: what ``keep_tags`` matches: every artifact's tags and the metadata values as text.
      protected: an alias names it (never dropped, never loses an artifact).
      copies: on how many remotes it is known to be (their last recorded heads reach it).
    """

    commit: str
    number: int
    time: dt.datetime
    artifacts: tuple[ArtifactFacts, ...] = ()
    tags: frozenset[tuple[str, str]] = frozenset()
    protected: bool = False
    copies: int = 0


@dataclasses.dataclass(frozen=True)
class TaskFacts:
    """A task: its head (the latest version) and every version its history holds."""

    spec: str
    task: str
    head: str
    versions: tuple[VersionFacts, ...]


# -- the planner -------------------------------------------------------------------------------


def plan(
    tasks: Iterable[TaskFacts],
    policy: Policy | Callable[[str], Policy],
    *,
    now: dt.datetime,
) -> RetainPlan:
    """Plan retention of ``tasks`` under ``policy`` (one, or one per spec) at time ``now``.

    Bytes freed count each blob once: a blob is freed when a planned version held it and no
    version or artifact the plan keeps holds it any more (blobs that tasks outside ``tasks``
    share are not known here, so the figure is an upper bound for a partial scope).
    """
    policy_for = policy if callable(policy) else (lambda _spec, p=policy: p)
    before: dict[str, int] = {}
    after: set[str] = set()
    plans = []
    for facts in tasks:
        task_plan = _plan_task(facts, policy_for(facts.spec), now)
        plans.append(task_plan)
        expired = {(v.commit, e.name) for v in task_plan.versions for e in v.expire}
        for v in facts.versions:
            kept = task_plan.keeps(v.commit)
            for a in v.artifacts:
                before.setdefault(a.oid, a.size)
                if kept and (v.commit, a.name) not in expired:
                    after.add(a.oid)
    freed = sum(size for oid, size in before.items() if oid not in after)
    return RetainPlan(tasks=tuple(plans), bytes_freed=freed)


def _plan_task(facts: TaskFacts, policy: Policy, now: dt.datetime) -> TaskPlan:
    ordered = sorted(facts.versions, key=lambda v: (v.time, v.number, v.commit), reverse=True)
    always: dict[str, list[str]] = {v.commit: [] for v in ordered}
    for v in ordered:
        if v.commit == facts.head:
            always[v.commit].append("latest")
        if v.protected:
            always[v.commit].append("alias")
        if policy.min_copies and not policy.force and v.copies < policy.min_copies:
            always[v.commit].append(f"on {v.copies} of {policy.min_copies} remotes")
    if policy.versions is None:
        by_rule = {v.commit: ["no version rule"] for v in ordered}
    else:
        by_rule = _keep(ordered, policy.versions, now)
    kept = [v for v in ordered if always[v.commit] or by_rule.get(v.commit)]
    expire = _expire(kept, always, policy, now)
    versions = tuple(
        VersionPlan(
            commit=v.commit,
            number=v.number,
            time=v.time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            keep=bool(always[v.commit] or by_rule.get(v.commit)),
            reasons=tuple(always[v.commit] + by_rule.get(v.commit, [])),
            expire=tuple(expire.get(v.commit, ())),
        )
        for v in ordered
    )
    rules = str(policy.versions) if policy.versions else ""
    return TaskPlan(facts.spec, facts.task, facts.head, versions, rules=rules)


def _keep(ordered: Sequence[VersionFacts], rules: Rules, now: dt.datetime) -> dict[str, list[str]]:
    """The reasons ``rules`` keep each version of ``ordered`` (newest first); absent: not kept."""
    reasons: dict[str, list[str]] = {}

    def keep(v: VersionFacts, why: str) -> None:
        reasons.setdefault(v.commit, []).append(why)

    if rules.keep_last:
        for v in ordered[: rules.keep_last]:
            keep(v, "last")
    if rules.keep_within:
        cutoff = rules.keep_within.before(now)
        for v in ordered:
            if v.time >= cutoff:
                keep(v, f"within {rules.keep_within}")
    buckets: list[tuple[str, int | None, Callable[[dt.datetime], object]]] = [
        ("daily", rules.keep_daily, lambda t: t.date()),
        ("weekly", rules.keep_weekly, lambda t: t.isocalendar()[:2]),
        ("monthly", rules.keep_monthly, lambda t: (t.year, t.month)),
    ]
    for name, count, bucket in buckets:
        if not count:
            continue
        # restic: walking newest first, the first version of each new bucket is that bucket's
        # newest; keep it until the rule has kept ``count`` buckets.
        last: object = None
        kept = 0
        for v in ordered:
            key = bucket(v.time.astimezone(dt.UTC))
            if key != last:
                last = key
                keep(v, name)
                kept += 1
                if kept == count:
                    break
    if rules.keep_tags:
        wanted = set(rules.keep_tags)
        for v in ordered:
            hit = sorted(wanted & v.tags)
            if hit:
                keep(v, "tag " + ", ".join(f"{k}={val}" for k, val in hit))
    return reasons


def _expire(
    kept: Sequence[VersionFacts],
    always: Mapping[str, list[str]],
    policy: Policy,
    now: dt.datetime,
) -> dict[str, list[Expiry]]:
    """Per kept version, the artifacts its type rules let go (newest-first ``kept``)."""
    if not any(policy.types.values()):
        return {}
    # A tag that a keep rule names keeps the artifacts carrying it: were such an artifact to
    # expire, the version would lose the tag that kept it and the next run would plan again.
    guard = {t for r in (policy.versions, *policy.types.values()) if r for t in r.keep_tags}

    # Each artifact answers to one rule: its exact type's, else its family's.
    def rule_of(a: ArtifactFacts) -> str | None:
        mime = a.content_type.split(";", 1)[0].strip().lower()
        if policy.types.get(mime):
            return mime
        family = mime.split("/", 1)[0] + "/*"
        return family if policy.types.get(family) else None

    holders: dict[str, list[VersionFacts]] = {}
    for v in kept:
        for pattern in dict.fromkeys(rule_of(a) for a in v.artifacts):
            if pattern is not None:
                holders.setdefault(pattern, []).append(v)
    keeps = {p: _keep(vs, policy.types[p], now) for p, vs in holders.items()}
    out: dict[str, list[Expiry]] = {}
    for v in kept:
        if always[v.commit]:
            continue
        for a in sorted(v.artifacts, key=lambda a: a.name):
            pattern = rule_of(a)
            if pattern is None or v.commit in keeps[pattern] or a.tags & guard:
                continue
            rule = f"type {pattern}: {policy.types[pattern]}"
            out.setdefault(v.commit, []).append(
                Expiry(name=a.name, size=a.size, content_type=a.content_type, rule=rule)
            )
    return out


def command_policy(
    *,
    keep_last: int | None = None,
    keep_within: str | Duration | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    keep_tags: Sequence[str] = (),
    content_type: str | None = None,
) -> Rules | None:
    """The rules a caller gave (None when it gave none), checked.

    Raises:
      UsageError: a count below 1, a duration or ``KEY=VALUE`` that does not read, or a
        ``content_type`` without a rule to restrict.
    """
    counts = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
    }
    for name, n in counts.items():
        if n is not None and n < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be 1 or more, not {n}")
    tags = []
    for item in keep_tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--keep-tag {item!r} is not KEY=VALUE")
        tags.append((key, value))
    within = parse_duration(keep_within) if isinstance(keep_within, str) else keep_within
    rules = Rules(keep_last, within, keep_daily, keep_weekly, keep_monthly, tuple(tags))
    if not rules:
        if content_type is not None:
            raise UsageError("--type restricts keep rules: give at least one --keep-* rule too")
        return None
    if content_type is not None:
        _check_type(content_type)
    return rules


def _check_type(mime: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][\w.+-]*/(\*|[A-Za-z0-9][\w.+-]*)", mime):
        raise UsageError(f"--type {mime!r} is not a content type (TYPE/SUBTYPE or TYPE/*)")
    return mime.lower()
