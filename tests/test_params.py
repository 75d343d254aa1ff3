"""Parameter sets and profiles: typed, with units and sources; bad input fails before a run."""

from __future__ import annotations

import dataclasses

import pytest

from tracesim.errors import TracesimError
from tracesim.models.params import (
    SECTIONS,
    Profile,
    load_profile,
    parse_overrides,
    profile_names,
)


def test_shipped_profiles_exist_and_differ_where_the_issue_says():
    assert {"2019-era", "current"} <= set(profile_names())
    old, new = load_profile("2019-era"), load_profile("current")
    assert old.kubelet.heartbeat == "nodestatus" and new.kubelet.heartbeat == "lease"
    assert old.etcd.freelist == "array" and new.etcd.freelist == "hashmap"
    assert old.apiserver.list_from_cache is False and new.apiserver.list_from_cache is True
    assert old.scheduler.client_qps == 50 and old.scheduler.client_burst == 100
    assert old.etcd.max_request_bytes == 1.5 * 2**20 and old.etcd.quota_bytes == 2 * 2**30


def test_every_parameter_has_a_unit_a_source_and_a_unit_in_its_name_or_a_choice():
    unit_words = ("_ms", "_s", "_us", "_ns", "_bytes", "_ratio", "_per_", "_ops", "qps", "_pages")
    for sec, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.metadata.get("source"), f"{sec}.{f.name} has no source"
            assert f.metadata.get("unit"), f"{sec}.{f.name} has no unit"
            if f.metadata["unit"] not in ("choice", "bool") and f.type not in (
                "int",
                "dict[str, int]",
            ):
                assert any(w in f.name for w in unit_words), f"{sec}.{f.name}: unit not in name"


def test_every_profile_value_is_commented_with_its_source():
    from tracesim.models.params import profile_dir

    for name in profile_names():
        for line in profile_dir().joinpath(f"{name}.toml").read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#") and not line.startswith("["):
                # Entries of the per-level shares table are covered by the table's comment.
                if line.split("=")[0].strip() in {
                    "system",
                    "node-high",
                    "leader-election",
                    "workload-high",
                    "workload-low",
                    "global-default",
                    "catch-all",
                }:
                    continue
                assert "#" in line, f"{name}.toml: no source comment on {line!r}"


def test_overrides_are_applied_with_types():
    p = load_profile(
        "current",
        [
            "etcd.fsync_ms=2",
            "etcd.fsync_ms=2.5ms",
            "etcd.freelist=array",
            "apiserver.list_from_cache=false",
            "apiserver.apf_shares.workload-low=50",
            "etcd.backend_commit_max_ops=500",
        ],
    )
    assert p.etcd.fsync_ms == 2.5
    assert p.etcd.freelist == "array"
    assert p.apiserver.list_from_cache is False
    assert p.apiserver.apf_shares["workload-low"] == 50
    assert p.etcd.backend_commit_max_ops == 500 and isinstance(p.etcd.backend_commit_max_ops, int)
    # The shipped file is not modified by an override.
    assert load_profile("current").etcd.fsync_ms == 1.0


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("nosuch", [], "valid: 2019-era, current"),
        ("current", ["etcd.nosuch=1"], "valid: apply_pipelined, apply_us_per_request"),
        ("current", ["nosuch.x=1"], "valid: apiserver, etcd, kubelet, scheduler"),
        ("current", ["etcd.fsync_ms=2s"], "in ms, not 's'"),
        ("current", ["etcd.fsync_ms=fast"], "takes a number in ms"),
        ("current", ["etcd.fsync_ms=-1"], "must be >= 0"),
        ("current", ["etcd.backend_commit_max_ops=1.5"], "whole number"),
        ("current", ["etcd.freelist=tree"], "one of array, hashmap"),
        ("current", ["apiserver.list_from_cache=maybe"], "true or false"),
        ("current", ["apiserver.apf_shares.nosuch=3"], "valid: catch-all"),
        ("current", ["apiserver.apf_shares=3"], "is a table"),
        ("current", ["etcd.fsync_ms"], "SECTION.KEY=VALUE"),
        ("current", ["etcd=1"], "names a section"),
        ("current", ["etcd.read_delay_ratio=1.5"], "set it between 0 and 1"),
    ],
)
def test_bad_input_is_one_line_error_naming_the_fix(name, overrides, needle):
    with pytest.raises(TracesimError) as exc:
        load_profile(name, overrides)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_profile_from_a_toml_path_and_bad_files(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text("[etcd]\nfsync_ms = 10  # spinning disk\n")
    p = load_profile(str(good))
    assert p.name == "mine" and p.etcd.fsync_ms == 10
    assert load_profile(good).etcd.fsync_ms == 10  # a Path works as well as a str
    assert p.etcd.freelist == Profile().etcd.freelist  # unlisted values keep the defaults
    bad = tmp_path / "bad.toml"
    bad.write_text("[etcd]\nfsync_ms = 'slow'\n")
    with pytest.raises(TracesimError, match="takes a number in ms"):
        load_profile(str(bad))
    bad.write_text("[etcd\n")
    with pytest.raises(TracesimError, match="invalid TOML"):
        load_profile(str(bad))
    bad.write_text("[disk]\nx = 1\n")
    with pytest.raises(TracesimError, match="valid: apiserver"):
        load_profile(str(bad))
    with pytest.raises(TracesimError, match="does not exist"):
        load_profile(str(tmp_path / "none.toml"))


def test_describe_and_to_dict_cover_every_parameter():
    p = load_profile("2019-era")
    rows = p.describe()
    n_fields = sum(len(dataclasses.fields(c)) for c in SECTIONS.values())
    assert len(rows) == n_fields
    assert rows[[r[0] for r in rows].index("etcd.freelist")][:2] == ("etcd.freelist", "array")
    d = p.to_dict()
    assert d["name"] == "2019-era" and d["kubelet"]["heartbeat"] == "nodestatus"
    assert parse_overrides(["a.b = 3"]) == [("a.b", "3")]
