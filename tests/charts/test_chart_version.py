"""Every change to the chart bumps its version (Chart.yaml ``version``).

A chart is a released artefact: two different charts with one version number
mean ``helm upgrade`` and chart caches cannot tell them apart. Compared with
the commit that last changed the version (git history of main; see
versionkit.py), nothing under charts/ticklake may have changed unless the
working tree bumps the version again, and versions only go up.
"""

from __future__ import annotations

from versionkit import changed_since, last_bump, semver, working_version


def test_the_chart_version_was_bumped_for_every_change() -> None:
    bump = last_bump()
    now = working_version()
    if now == bump.version:
        changed = changed_since(bump.commit)
        assert not changed, (
            f"charts/ticklake changed since {bump.commit[:12]} set version {bump.version}, "
            f"and the version was not bumped: {changed}. Raise `version` in Chart.yaml."
        )
    else:
        assert semver(now) > semver(bump.version), f"version went from {bump.version} to {now}"


def test_versions_only_go_up() -> None:
    bump = last_bump()
    if bump.previous is not None:
        assert semver(bump.version) > semver(bump.previous), bump


def test_semver_orders_numerically() -> None:
    assert semver("0.10.0") > semver("0.9.1")
    assert semver("1.0.0-rc1") == (1, 0, 0)
