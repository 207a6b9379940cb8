"""The memory guard reads what the kernel enforces: this process's own cgroup and every group above it,
without the page cache the kernel would drop, less a reserve for the rest of the class."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import ModelConfig, TrainConfig, memory
from cnnlab.classroom import PoolSettings, classroom_settings
from cnnlab.cost import check_fits, estimate_cost
from tests.cgroup_helpers import memory_cgroup
from tests.conftest import ROOT

MB, GB = 2**20, 2**30
V1_MOUNTS = """\
25 1 0:23 / / rw,relatime - overlay overlay rw
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
NO_LIMIT_V1 = 9223372036854771712


def host(tmp_path: Path, cgroup: str, mountinfo: str, groups: dict[str, dict[str, int | str]],
         ram_gb: float = 24, available_gb: float = 22) -> Path:
    """A fake machine under tmp_path: /proc/self/cgroup, mountinfo, meminfo and cgroup directories,
    each given as {"sys/fs/cgroup/...": {"memory.max": ..., "memory.stat": "..."}}."""
    files = {"proc/self/cgroup": cgroup, "proc/self/mountinfo": mountinfo,
             "proc/meminfo": f"MemTotal: {int(ram_gb * GB / 1024)} kB\nMemFree: 1 kB\n"
                             f"MemAvailable: {int(available_gb * GB / 1024)} kB\n"}
    files |= {f"{directory}/{name}": str(value) for directory, group in groups.items() for name, value in group.items()}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def v1(limit: int, usage: int, cache: int = 0, shmem: int = 0, mapped: int = 0, inactive: int = 0) -> dict:
    return {"memory.limit_in_bytes": limit, "memory.usage_in_bytes": usage,
            "memory.stat": f"cache 0\nrss 0\ntotal_cache {cache}\ntotal_rss {usage - cache}\ntotal_shmem {shmem}\n"
                           f"total_mapped_file {mapped}\ntotal_inactive_file {inactive}\n"
                           f"total_active_file {cache - shmem - inactive}\n"}


def v2(limit: int | str, usage: int, file: int = 0, shmem: int = 0, mapped: int = 0) -> dict:
    return {"memory.max": limit, "memory.current": usage,
            "memory.stat": f"anon {usage - file}\nfile {file}\nshmem {shmem}\nfile_mapped {mapped}\n"}


def test_a_nested_v1_group_like_this_servers_is_read_not_the_hierarchys_root(tmp_path):
    root = host(tmp_path, "4:memory:/process_api/abc\n1:cpu:/\n0::/\n", V1_MOUNTS, {
        "sys/fs/cgroup/memory": v1(NO_LIMIT_V1, 3 * GB),
        "sys/fs/cgroup/memory/process_api": v1(NO_LIMIT_V1, 3 * GB),
        "sys/fs/cgroup/memory/process_api/abc": v1(2700 * MB, 900 * MB)})
    seen = memory.budget(root)
    assert (seen.limit, seen.available) == (2700 * MB, 1800 * MB)
    assert seen.where == str(root / "sys/fs/cgroup/memory/process_api/abc")


def test_a_v2_service_with_memory_max_is_read(tmp_path):
    root = host(tmp_path, "0::/system.slice/cnnlab.service\n", V2_MOUNTS, {
        "sys/fs/cgroup/system.slice": v2("max", 5 * GB),
        "sys/fs/cgroup/system.slice/cnnlab.service": v2(2700 * MB, 700 * MB)})
    assert memory.budget(root).limit == 2700 * MB and memory.available_bytes(root) == 2000 * MB


def test_a_parent_tighter_than_the_child_decides_with_its_other_childrens_usage(tmp_path):
    root = host(tmp_path, "0::/class/server\n", V2_MOUNTS, {
        "sys/fs/cgroup/class": v2(2 * GB, 1536 * MB),           # another server in the class uses 1 GB of it
        "sys/fs/cgroup/class/server": v2(4 * GB, 512 * MB)})
    seen = memory.budget(root)
    assert (seen.limit, seen.available) == (2 * GB, 512 * MB) and seen.where.endswith("class")


def test_a_child_tighter_than_its_parent_decides(tmp_path):
    root = host(tmp_path, "4:memory:/class/server\n", V1_MOUNTS, {
        "sys/fs/cgroup/memory/class": v1(8 * GB, 3 * GB),
        "sys/fs/cgroup/memory/class/server": v1(GB, 200 * MB)})
    assert (memory.limit_bytes(root), memory.available_bytes(root)) == (GB, 824 * MB)


def test_the_machine_is_the_outermost_limit(tmp_path):
    root = host(tmp_path, "0::/server\n", V2_MOUNTS, {"sys/fs/cgroup/server": v2(8 * GB, GB)},
                ram_gb=4, available_gb=1.5)
    assert memory.budget(root) == memory.Budget(4 * GB, int(1.5 * GB), "machine")


def test_without_any_limit_the_machine_counts(tmp_path):
    root = host(tmp_path, "4:memory:/a\n0::/\n", V1_MOUNTS, {
        "sys/fs/cgroup/memory": v1(NO_LIMIT_V1, GB), "sys/fs/cgroup/memory/a": v1(NO_LIMIT_V1, GB)},
        ram_gb=24, available_gb=22)
    assert memory.budget(root) == memory.Budget(24 * GB, 22 * GB, "machine")
    v2_root = host(tmp_path / "v2", "0::/a\n", V2_MOUNTS, {"sys/fs/cgroup/a": v2("max", GB)}, available_gb=20)
    assert memory.available_bytes(v2_root) == 20 * GB


def test_a_container_sees_its_own_group_at_the_mounts_root(tmp_path):
    # no cgroup namespace: the host's path in /proc/self/cgroup, the group itself mounted (field 4)
    without = host(tmp_path / "without", "4:memory:/docker/abc\n",
                   "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
                   {"sys/fs/cgroup/memory": v1(GB, 100 * MB)})
    # its own cgroup namespace: the group is "/" and is the mount's root
    within = host(tmp_path / "within", "0::/\n", V2_MOUNTS, {"sys/fs/cgroup": v2(GB, 100 * MB)})
    assert memory.available_bytes(without) == memory.available_bytes(within) == 924 * MB


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_page_cache_the_kernel_can_drop_leaves_room_for_a_run(tmp_path, layout, monkeypatch):
    # 1.5 GB of files read inside a 2,700 MB group, 0.9 GB of the server's own memory: AlexNet at
    # 163 px (about 1.7 GB, 1.0 GB of it beyond the loaded runtime) fits, the reserve included
    group = (v1(2700 * MB, 2400 * MB, cache=1500 * MB, mapped=100 * MB, inactive=500 * MB) if layout == "v1"
             else v2(2700 * MB, 2400 * MB, file=1500 * MB, mapped=100 * MB))
    mounts, line, where = ((V1_MOUNTS, "4:memory:/server\n", "sys/fs/cgroup/memory/server") if layout == "v1"
                           else (V2_MOUNTS, "0::/server\n", "sys/fs/cgroup/server"))
    root = host(tmp_path, line, mounts, {where: group})
    assert memory.available_bytes(root) == 1700 * MB  # the mapped libraries stay counted
    use(monkeypatch, root)
    alexnet = estimate_cost(TrainConfig(ModelConfig("alexnet", input_size=163)), 5000, 1000, macs_per_second=1e10)
    check_fits(alexnet, reserve_bytes=400 * MB)


def test_shared_memory_in_the_cache_is_not_free(tmp_path, monkeypatch):
    root = host(tmp_path, "0::/server\n", V2_MOUNTS, {
        "sys/fs/cgroup/server": v2(2700 * MB, 2400 * MB, file=1500 * MB, shmem=1500 * MB)})
    assert memory.available_bytes(root) == 300 * MB
    use(monkeypatch, root)
    alexnet = estimate_cost(TrainConfig(ModelConfig("alexnet", input_size=163)), 5000, 1000, macs_per_second=1e10)
    with pytest.raises(ValueError, match=r"0\.3 GB free now \(limit 2\.6 GB\)"):
        check_fits(alexnet, reserve_bytes=0)


def test_odd_or_unreadable_files_fall_back_without_crashing(tmp_path):
    garbage = host(tmp_path / "garbage", "nonsense\n4:memory\n::\n4:memory:/a\n", "not a mount line\n - \n" + V1_MOUNTS,
                   {"sys/fs/cgroup/memory/a": {"memory.limit_in_bytes": "-5", "memory.usage_in_bytes": "lots",
                                               "memory.stat": "total_cache\nx y z\n"}})
    assert memory.budget(garbage) == memory.Budget(24 * GB, 22 * GB, "machine")
    # a limit with no readable usage still holds; no stat file: no cache counted as free
    partial = host(tmp_path / "partial", "0::/a\n", V2_MOUNTS, {"sys/fs/cgroup/a": {"memory.max": GB}})
    assert memory.budget(partial).available == GB
    # no /proc/self/cgroup nor mountinfo: the usual mount's root, as a container with its own namespace sees it
    usual = host(tmp_path / "usual", "", "", {"sys/fs/cgroup": v2(GB, 400 * MB)})
    (usual / "proc/self/cgroup").unlink()
    (usual / "proc/self/mountinfo").unlink()
    assert memory.available_bytes(usual) == 624 * MB
    # nothing readable at all: the machine's own numbers
    empty = tmp_path / "empty"
    empty.mkdir()
    assert memory.budget(empty).where == "machine" and 0 < memory.available_bytes(empty) <= memory.limit_bytes(empty)


def use(monkeypatch, root: Path) -> None:
    """Make the guard read the fake machine at `root`."""
    budget = memory.budget
    monkeypatch.setattr(memory, "available_bytes", lambda: budget(root).available)
    monkeypatch.setattr(memory, "limit_bytes", lambda: budget(root).limit)


# --- the reserve ----------------------------------------------------------------------------------------------

def test_a_run_is_admitted_only_with_the_classrooms_reserve_left_over(monkeypatch):
    lenet = estimate_cost(TrainConfig(ModelConfig("lenet5")), 6000, 1000, macs_per_second=1e10)
    needed = lenet.peak_bytes - lenet.breakdown["runtime"]
    monkeypatch.setattr(memory, "available_bytes", lambda: needed + 300 * MB)
    check_fits(lenet, reserve_bytes=0)
    with pytest.raises(memory.NotEnoughMemory) as refused:
        check_fits(lenet, TrainConfig(ModelConfig("lenet5")), 6000, 1000, reserve_bytes=400 * MB)
    assert "0.4 GB is kept back for other learners' pages, uploads and imports" in str(refused.value)
    assert "0.4 GB는 다른 학습자의" in refused.value.in_language("ko")


def test_the_reserve_is_a_classroom_setting(tmp_path, monkeypatch):
    assert PoolSettings().memory_reserve_mb == 400
    assert PoolSettings.from_file(ROOT / ".streamlit" / "classroom.toml").memory_reserve_bytes == 400 * MB
    path = tmp_path / "classroom.toml"
    path.write_text("[classroom]\nmemory_reserve_mb = 0\n")
    monkeypatch.setenv("CNNLAB_CLASSROOM", str(path))
    assert classroom_settings().memory_reserve_bytes == 0
    monkeypatch.delenv("CNNLAB_CLASSROOM")
    assert classroom_settings() == PoolSettings.from_file(ROOT / ".streamlit" / "classroom.toml")
    for wrong in (-1, 0.5, "lots", 10**6):
        with pytest.raises(ValueError, match=f"memory_reserve_mb must be a whole number from 0 to 65536. "
                                             f"Received: memory_reserve_mb={wrong!r}"):
            PoolSettings(memory_reserve_mb=wrong)


# --- a real cgroup, where this machine lets the tests make one (root, a writable memory controller) ---------

_INSIDE = """
import json, os, sys
from cnnlab import ModelConfig, TrainConfig, memory
from cnnlab.cost import check_fits, estimate_cost
before = memory.budget()
with open(sys.argv[1], "wb") as out:  # 1.5 GB of files, read twice: the page cache of a busy server
    for _ in range(1500):
        out.write(bytes(2**20))
    out.flush()
    os.fsync(out.fileno())
for _ in range(2):
    with open(sys.argv[1], "rb") as back:
        while back.read(2**24):
            pass
after = memory.budget()
alexnet = estimate_cost(TrainConfig(ModelConfig("alexnet", input_size=163)), 5000, 1000, macs_per_second=1e10)
check_fits(alexnet, reserve_bytes=400 * 2**20)
print(json.dumps({"before": before.__dict__, "after": after.__dict__}))
"""


def test_in_a_real_2700_mb_group_the_guard_reads_the_groups_limit_and_drops_the_cache(tmp_path):
    with memory_cgroup(2700) as group:
        done = subprocess.run(group.command([sys.executable, "-c", _INSIDE, str(tmp_path / "cache.bin")]), cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["before"]["limit"] == seen["after"]["limit"] == group.limit_bytes
        assert seen["before"]["where"] == str(group.path)
        assert seen["after"]["available"] > seen["before"]["available"] - 300 * MB  # not 1.5 GB less


def test_in_a_real_2700_mb_group_the_cli_refuses_vgg19_at_168_instead_of_being_killed(tmp_path):
    with memory_cgroup(2700) as group:
        done = subprocess.run(group.command([sys.executable, "-m", "cnnlab", "train", "vgg19", "--input-size", "168",
                                             "--epochs", "1", "--out", str(tmp_path / "run")]),
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "GB of memory" in done.stderr and "(limit 2.6 GB)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
