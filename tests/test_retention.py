"""The retention planner, without a disk: one test per rule, then properties over random stores.

The planner is a pure function of plain values (:mod:`gitstore.retention`), so each rule is
checked on versions made up here, and the properties the issue asks for (the latest version of
every task stays, no rule keeps fewer than it says, a second run plans nothing, an alias is never
dropped) are checked over a few hundred random tasks and policies from a seeded generator.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from gitstore.errors import StoreError, UsageError
from gitstore.model import RetainPlan
from gitstore.retention import (
    ArtifactFacts,
    Duration,
    Policy,
    Rules,
    TaskFacts,
    VersionFacts,
    parse_duration,
    parse_policy,
    plan,
)

NOW = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def version(n: int, time: dt.datetime, **kw: object) -> VersionFacts:
    """Version ``n`` made at ``time`` holding one diff of its own (blob ``d<n>``)."""
    arts = kw.pop("artifacts", (ArtifactFacts("diff.diff", f"d{n}", 100, "text/x-diff"),))
    return VersionFacts(commit=f"c{n}", number=n, time=time, artifacts=arts, **kw)  # type: ignore[arg-type]


def task(versions: list[VersionFacts], name: str = "t") -> TaskFacts:
    """A task whose head is its highest-numbered version."""
    head = max(versions, key=lambda v: v.number).commit
    return TaskFacts("s", name, head, tuple(versions))


def hourly(count: int) -> TaskFacts:
    """``count`` versions, one an hour, the newest at NOW."""
    return task([version(n, NOW - (count - n) * HOUR) for n in range(1, count + 1)])


def kept(result: RetainPlan) -> set[int]:
    return {v.number for t in result.tasks for v in t.versions if v.keep}


# -- one rule at a time ------------------------------------------------------------------------


def test_keep_last_keeps_the_newest_n() -> None:
    result = plan([hourly(10)], Policy(Rules(keep_last=3)), now=NOW)
    assert kept(result) == {10, 9, 8}


def test_keep_last_orders_by_time_not_by_number() -> None:
    # A version written with an older clock (pulled from a machine behind) is older.
    t = task([version(1, NOW), version(2, NOW - 5 * HOUR), version(3, NOW - HOUR)])
    result = plan([t], Policy(Rules(keep_last=2)), now=NOW)
    assert kept(result) == {1, 3}  # the newest by time (v1) and the next (v3, also the latest)


def test_keep_within_keeps_what_is_younger_than_the_duration() -> None:
    result = plan([hourly(10)], Policy(Rules(keep_within=parse_duration("3h"))), now=NOW)
    assert kept(result) == {10, 9, 8, 7}  # 0, 1, 2 and 3 hours old


def test_keep_within_counts_months_on_the_calendar() -> None:
    # A month before 31 March is the end of February, not 30 days back (1 March).
    assert Duration(months=1).before(NOW) == dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC)
    assert Duration(years=1, weeks=1).before(NOW) == dt.datetime(2025, 3, 24, 12, tzinfo=dt.UTC)


def test_keep_daily_keeps_the_newest_of_each_of_the_last_days_with_versions() -> None:
    day = dt.timedelta(days=1)
    versions = [
        version(1, NOW - 9 * day),
        version(2, NOW - 5 * day - HOUR),
        version(3, NOW - 5 * day),  # the newest of its day
        version(4, NOW - 2 * day),
        version(5, NOW - HOUR),
        version(6, NOW),
    ]
    result = plan([task(versions)], Policy(Rules(keep_daily=3)), now=NOW)
    # Days without versions do not count: the third day with versions is five days back.
    assert kept(result) == {6, 4, 3}


def test_keep_weekly_and_monthly_bucket_by_iso_week_and_month() -> None:
    times = [
        dt.datetime(2026, 1, 5, tzinfo=dt.UTC),  # Monday, week 2
        dt.datetime(2026, 1, 11, tzinfo=dt.UTC),  # Sunday, week 2: newest of that week
        dt.datetime(2026, 1, 12, tzinfo=dt.UTC),  # week 3
        dt.datetime(2026, 2, 2, tzinfo=dt.UTC),  # February
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC),  # March
    ]
    t = task([version(n, when) for n, when in enumerate(times, 1)])
    assert kept(plan([t], Policy(Rules(keep_weekly=4)), now=NOW)) == {5, 4, 3, 2}
    assert kept(plan([t], Policy(Rules(keep_monthly=2)), now=NOW)) == {5, 4}


def test_keep_tag_keeps_versions_carrying_the_tag() -> None:
    versions = [version(n, NOW - (5 - n) * HOUR) for n in range(1, 6)]
    versions[1] = dataclasses.replace(versions[1], tags=frozenset({("release", "1")}))
    result = plan([task(versions)], Policy(Rules(keep_tags=(("release", "1"),))), now=NOW)
    assert kept(result) == {2, 5}
    assert result.tasks[0].versions[3].reasons == ("tag release=1",)


def test_any_rule_keeps_and_reasons_name_every_rule() -> None:
    result = plan([hourly(6)], Policy(Rules(keep_last=1, keep_daily=1)), now=NOW)
    newest = result.tasks[0].versions[0]
    assert newest.reasons == ("latest", "last", "daily")
    assert kept(result) == {6}


def test_the_latest_version_stays_whatever_the_rules() -> None:
    old = task([version(1, NOW - 400 * 24 * HOUR), version(2, NOW - 300 * 24 * HOUR)])
    result = plan([old], Policy(Rules(keep_within=parse_duration("1d"))), now=NOW)
    assert kept(result) == {2}


def test_protected_versions_are_never_dropped_nor_lose_artifacts() -> None:
    log = ArtifactFacts("log.log", "l1", 50, "text/x-log")
    versions = [version(1, NOW - 50 * HOUR, protected=True, artifacts=(log,)), version(2, NOW)]
    policy = Policy(Rules(keep_last=1), types={"text/x-log": Rules(keep_last=1)})
    result = plan([task(versions)], policy, now=NOW)
    assert kept(result) == {1, 2}
    assert result.tasks[0].versions[1].expire == ()
    assert result.tasks[0].versions[1].reasons == ("alias",)


def test_min_copies_keeps_versions_not_on_enough_remotes_unless_forced() -> None:
    versions = [version(1, NOW - 2 * HOUR, copies=2), version(2, NOW - HOUR), version(3, NOW)]
    policy = Policy(Rules(keep_last=1), min_copies=1)
    result = plan([task(versions)], policy, now=NOW)
    assert kept(result) == {3, 2}
    assert result.tasks[0].versions[1].reasons == ("on 0 of 1 remotes",)
    forced = plan([task(versions)], dataclasses.replace(policy, force=True), now=NOW)
    assert kept(forced) == {3}


def test_a_type_rule_expires_artifacts_and_keeps_the_versions() -> None:
    def v(n: int) -> VersionFacts:
        return version(
            n,
            NOW - (5 - n) * 24 * HOUR,
            artifacts=(
                ArtifactFacts("diff.diff", f"d{n}", 100, "text/x-diff"),
                ArtifactFacts("log.log", f"l{n}", 1000, "text/x-log"),
            ),
        )

    policy = Policy(types={"text/x-log": Rules(keep_within=parse_duration("2d"))})
    result = plan([task([v(n) for n in range(1, 6)])], policy, now=NOW)
    assert kept(result) == {1, 2, 3, 4, 5}
    expired = {v.number: [e.name for e in v.expire] for v in result.tasks[0].versions}
    assert expired == {5: [], 4: [], 3: [], 2: ["log.log"], 1: ["log.log"]}
    assert result.tasks[0].versions[4].expire[0].rule == "type text/x-log: keep-within 2d"
    assert result.bytes_freed == 2000


def test_an_exact_type_rule_wins_over_its_family() -> None:
    arts = (
        ArtifactFacts("a.log", "a", 1, "text/x-log"),
        ArtifactFacts("b.txt", "b", 1, "text/plain"),
    )
    versions = [version(1, NOW - HOUR, artifacts=arts), version(2, NOW, artifacts=arts)]
    policy = Policy(types={"text/*": Rules(keep_last=1), "text/x-log": Rules(keep_last=2)})
    result = plan([task(versions)], policy, now=NOW)
    assert [e.name for e in result.tasks[0].versions[1].expire] == ["b.txt"]


def test_a_tag_that_keeps_versions_keeps_the_artifact_carrying_it() -> None:
    tagged = ArtifactFacts("log.log", "l1", 10, "text/x-log", frozenset({("keep", "yes")}))
    versions = [
        version(1, NOW - HOUR, artifacts=(tagged,), tags=frozenset({("keep", "yes")})),
        version(2, NOW),
    ]
    policy = Policy(Rules(keep_tags=(("keep", "yes"),)), types={"text/x-log": Rules(keep_last=1)})
    result = plan([task(versions)], policy, now=NOW)
    assert kept(result) == {1, 2}
    assert result.tasks[0].versions[1].expire == ()


def test_bytes_freed_count_a_shared_blob_once_and_only_when_nothing_keeps_it() -> None:
    shared = ArtifactFacts("big.bin", "same", 1000, "application/octet-stream")
    versions = [
        version(1, NOW - 3 * HOUR, artifacts=(shared,)),
        version(2, NOW - 2 * HOUR, artifacts=(shared, ArtifactFacts("x", "x2", 7, "text/plain"))),
        version(3, NOW, artifacts=(ArtifactFacts("y", "y3", 5, "text/plain"),)),
    ]
    result = plan([task(versions)], Policy(Rules(keep_last=1)), now=NOW)
    assert result.bytes_freed == 1007
    other = TaskFacts("s", "u", "k", (version(9, NOW, artifacts=(shared,)),))
    other = dataclasses.replace(other, head="c9")
    assert plan([task(versions), other], Policy(Rules(keep_last=1)), now=NOW).bytes_freed == 7


def test_no_version_rule_keeps_every_version() -> None:
    result = plan([hourly(4)], Policy(types={"text/x-log": Rules(keep_last=1)}), now=NOW)
    assert kept(result) == {1, 2, 3, 4}


# -- durations and the store's policy ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12h", Duration(hours=12)),
        ("7d", Duration(days=7)),
        ("2w", Duration(weeks=2)),
        ("6m", Duration(months=6)),
        ("1y", Duration(years=1)),
        ("1y6m2d", Duration(years=1, months=6, days=2)),
    ],
)
def test_durations_read_like_restic(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "1d1y", "1d1d", "0d", "-1d", "7 d", "1.5d"])
def test_bad_durations_are_refused_with_what_one_looks_like(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        parse_duration(text)


def test_the_store_policy_reads_defaults_specs_and_types() -> None:
    store = parse_policy(
        {
            "retain": {"keepwithin": "30d", "mincopies": "1"},
            "retain.type.text/x-log": {"keepwithin": "7d"},
            "retain.spec.nightly": {"keeplast": "3"},
            "retain.spec.a.type.b.type.text/plain": {"keeptag": "k=v, x=y"},
            "remote": {"ignored": "yes"},
        }
    )
    assert store.for_spec("other") == Policy(
        Rules(keep_within=Duration(days=7 * 0 + 30)),
        types={"text/x-log": Rules(keep_within=Duration(days=7))},
        min_copies=1,
    )
    nightly = store.for_spec("nightly")
    assert nightly.versions == Rules(keep_last=3)
    assert nightly.types == {"text/x-log": Rules(keep_within=Duration(days=7))}
    assert nightly.min_copies == 1
    odd = store.for_spec("a.type.b")
    assert odd.types["text/plain"] == Rules(keep_tags=(("k", "v"), ("x", "y")))


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"retain": {"keepwithin": "soon"}}, "gitstore.retain.keepwithin: 'soon' is not a dur"),
        ({"retain": {"keeplast": "three"}}, "keeplast = 'three' is not a whole number"),
        ({"retain": {"keeplast": "0"}}, "is below 1"),
        ({"retain": {"keepforever": "1"}}, "not a retention setting"),
        ({"retain.type.log": {"keeplast": "1"}}, "'log' is not a content type"),
        ({"retain.spec.no/such": {"keeplast": "1"}}, "not a spec name"),
        ({"retain.spec.s": {"mincopies": "1"}}, "not a retention setting"),
        ({"retain.specs.s": {"keeplast": "1"}}, "not a retention section"),
    ],
)
def test_a_bad_policy_names_the_setting(sections: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_policy(sections)


# -- properties over random stores -------------------------------------------------------------


def random_policy(rng: random.Random) -> Policy:
    def rules() -> Rules:
        def maybe(n: int) -> int | None:
            return rng.randint(1, n) if rng.random() < 0.4 else None

        within = Duration(hours=rng.randint(1, 24 * 60)) if rng.random() < 0.4 else None
        tags = (("k", str(rng.randint(0, 3))),) if rng.random() < 0.3 else ()
        return Rules(maybe(8), within, maybe(8), maybe(5), maybe(4), tags)

    types = {t: rules() for t in ("text/x-log", "text/*") if rng.random() < 0.5}
    return Policy(
        rules() if rng.random() < 0.8 else None,
        types,
        min_copies=rng.choice([0, 0, 1, 2]),
        force=rng.random() < 0.3,
    )


def random_task(rng: random.Random, name: str) -> TaskFacts:
    count = rng.randint(1, 40)
    when = NOW - dt.timedelta(days=rng.randint(0, 200))
    versions = []
    for n in range(1, count + 1):
        when -= dt.timedelta(hours=rng.choice([0.1, 1, 5, 24, 24 * 9]))
        arts = tuple(
            ArtifactFacts(
                name,
                f"{name}-{rng.randint(0, count)}",
                rng.randint(1, 1000),
                ctype,
                frozenset({("k", str(rng.randint(0, 6)))}),
            )
            for name, ctype in (("log.log", "text/x-log"), ("r.txt", "text/plain"), ("d", "a/b"))
            if rng.random() < 0.7
        )
        tags = frozenset(t for a in arts for t in a.tags)
        versions.append(
            VersionFacts(
                f"{name}-c{n}",
                count + 1 - n,
                when,
                arts,
                tags,
                protected=rng.random() < 0.05,
                copies=rng.randint(0, 2),
            )
        )
    return TaskFacts("s", name, versions[0].commit, tuple(versions))


def applied(facts: TaskFacts, result: RetainPlan) -> TaskFacts:
    """The task as it is after the plan: dropped versions gone, expired artifacts gone."""
    (task_plan,) = [t for t in result.tasks if t.task == facts.task]
    by_commit = {v.commit: v for v in task_plan.versions}
    left = []
    for v in facts.versions:
        p = by_commit[v.commit]
        if p.keep:
            gone = {e.name for e in p.expire}
            arts = tuple(a for a in v.artifacts if a.name not in gone)
            left.append(dataclasses.replace(v, artifacts=arts))
    return dataclasses.replace(facts, versions=tuple(left))


def test_properties_hold_for_random_policies() -> None:
    # One test over every seed (parametrised, it would print 300 rows); a failing assertion
    # names its seed, which replays the case.
    for seed in range(300):
        rng = random.Random(seed)
        policy = random_policy(rng)
        tasks = [random_task(rng, f"t{i}") for i in range(3)]
        result = plan(tasks, policy, now=NOW)
        for facts, task_plan in zip(tasks, result.tasks, strict=True):
            decided = {v.commit: v for v in task_plan.versions}
            # The latest version of every task stays, whole.
            assert decided[facts.head].keep and not decided[facts.head].expire, seed
            # A protected version stays, whole.
            for v in facts.versions:
                if v.protected:
                    assert decided[v.commit].keep and not decided[v.commit].expire, seed
            # No rule keeps fewer than it says.
            rules = policy.versions
            if rules is not None and rules.keep_last:
                n_kept = sum(1 for v in task_plan.versions if v.keep)
                assert n_kept >= min(rules.keep_last, len(facts.versions)), seed
            if rules is None:
                assert all(v.keep for v in task_plan.versions), seed
            # Versions not on enough remotes stay unless forced.
            if policy.min_copies and not policy.force:
                for v in facts.versions:
                    if v.copies < policy.min_copies:
                        assert decided[v.commit].keep, seed
            # Idempotent: planning again over what the plan leaves plans nothing.
            again = plan([applied(facts, result)], policy, now=NOW)
            assert not again.tasks[0].changes, seed
            assert again.bytes_freed == 0, seed
