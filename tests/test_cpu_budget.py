"""The usable core count: affinity capped by the cgroup CPU quota (fake cgroup trees)."""

from __future__ import annotations

import pytest

from keras_species import cpu_budget
from keras_species.cpu_budget import cgroup_cpu_quota, default_tensorflow_threads, usable_cores


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _v2(root, limits: dict[str, str]):
    """A cgroup v2 mount at ``root`` with ``cpu.max`` per cgroup path ('' is the root)."""
    _write(root / "cgroup.controllers", "cpu memory\n")
    for path, value in limits.items():
        _write(root / path / "cpu.max", value + "\n")


def _v1(root, quotas: dict[str, int], mount: str = "cpu,cpuacct"):
    for path, quota in quotas.items():
        _write(root / mount / path / "cpu.cfs_quota_us", f"{quota}\n")
        _write(root / mount / path / "cpu.cfs_period_us", "100000\n")


def test_v2_the_tightest_quota_of_the_cgroup_and_its_ancestors(tmp_path):
    root = tmp_path / "cgroup"
    _v2(root, {"": "max 100000", "kubepods": "400000 100000", "kubepods/pod/ctr": "150000 100000"})
    proc = tmp_path / "cgroup.txt"
    proc.write_text("0::/kubepods/pod/ctr\n")
    assert cgroup_cpu_quota(root, proc) == 1.5
    _write(root / "kubepods/pod/ctr/cpu.max", "max 100000\n")  # the parent's limit still applies
    assert cgroup_cpu_quota(root, proc) == 4.0
    _write(root / "kubepods/cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, proc) is None


def test_inside_a_container_the_mount_root_is_its_own_cgroup(tmp_path):
    # v1 without a cgroup namespace: /proc/self/cgroup names the host's path, the mount shows
    # the container's cgroup at its root
    root, proc = tmp_path / "cgroup", tmp_path / "cgroup.txt"
    _v1(root, {"": 50000})
    proc.write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_quota(root, proc) == 0.5
    _v1(root, {"": -1})  # -1: no quota
    assert cgroup_cpu_quota(root, proc) is None


def test_hybrid_hierarchy_reads_the_v1_cpu_controller(tmp_path):
    # v2 mounted at unified/ without the cpu controller, v1's cpu controller on its own mount
    root, proc = tmp_path / "cgroup", tmp_path / "cgroup.txt"
    _write(root / "unified" / "cgroup.controllers", "\n")
    _v1(root, {"": -1, "batch": 200000}, mount="cpu")
    proc.write_text("1:cpu:/batch\n0::/\n")
    assert cgroup_cpu_quota(root, proc) == 2.0


@pytest.mark.parametrize("text", ["", "garbage\n", "0::/x\n", "3:memory:/\n"])
def test_no_quota_where_nothing_says_so(tmp_path, text):
    root, proc = tmp_path / "cgroup", tmp_path / "cgroup.txt"
    _v2(root, {"": "max 100000", "x": "not numbers"})
    proc.write_text(text)
    assert cgroup_cpu_quota(root, proc) is None
    assert cgroup_cpu_quota(root, tmp_path / "missing") is None


@pytest.mark.parametrize(("quota", "affinity", "cores"), [
    (None, 8, 8), (1.5, 8, 2), (0.3, 8, 1), (2.0, 8, 2), (64.0, 2, 2),
])
def test_usable_cores_is_the_affinity_capped_by_the_quota_rounded_up(monkeypatch, quota, affinity, cores):
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: quota)
    monkeypatch.setattr(cpu_budget, "affinity_cores", lambda: affinity)
    assert usable_cores() == cores


def test_tensorflow_threads_follow_a_quota_and_keep_the_users_own(monkeypatch):
    monkeypatch.setattr(cpu_budget, "affinity_cores", lambda: 64)
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: None)
    env: dict[str, str] = {}
    assert default_tensorflow_threads(env) is None and env == {}
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: 2.0)
    assert default_tensorflow_threads(env) == 2
    assert env == {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"}
    env = {"TF_NUM_INTRAOP_THREADS": "6"}
    default_tensorflow_threads(env)
    assert env == {"TF_NUM_INTRAOP_THREADS": "6", "TF_NUM_INTEROP_THREADS": "2"}


def test_this_process_has_a_sane_count():
    assert 1 <= usable_cores() <= cpu_budget.affinity_cores()


def test_the_header_line_names_a_quota(monkeypatch):
    monkeypatch.setattr(cpu_budget, "affinity_cores", lambda: 128)
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: None)
    assert cpu_budget.describe_cores() == "128 CPU cores"
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: 1.5)
    assert cpu_budget.describe_cores() == "2 CPU cores (a quota of 1.5 CPUs on 128 visible)"
