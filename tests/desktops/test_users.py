"""UserPool: one dedicated, unprivileged user per desktop slot."""

from __future__ import annotations

import grp
import pwd
import time

import pytest

from computer_use.desktops.users import SessionUser, UserPool


async def test_ensure_creates_one_unprivileged_user_with_own_group_per_slot(
    fs_user_pool: UserPool, fs_users: list[SessionUser]
) -> None:
    prefix, size = fs_user_pool.prefix, fs_user_pool.size
    assert [u.name for u in fs_users] == [f"{prefix}{i:02d}" for i in range(1, size + 1)]
    assert len({u.uid for u in fs_users}) == len({u.gid for u in fs_users}) == size
    for user in fs_users:
        entry = pwd.getpwnam(user.name)
        assert (entry.pw_uid, entry.pw_gid) == (user.uid, user.gid)
        assert user.uid != 0 and user.gid != 0
        assert entry.pw_dir == "/home/user"
        assert entry.pw_shell == "/usr/sbin/nologin"
        assert grp.getgrgid(user.gid).gr_name == user.name
        assert grp.getgrgid(user.gid).gr_mem == []


async def test_ensure_is_idempotent_and_fast_when_users_exist(
    fs_user_pool: UserPool, fs_users: list[SessionUser]
) -> None:
    pool = UserPool(fs_user_pool.size, prefix=fs_user_pool.prefix)
    started = time.perf_counter()
    await pool.ensure()
    assert time.perf_counter() - started < 0.05
    assert pool.all_users() == fs_users


async def test_user_for_slot_is_deterministic_and_bounded(
    fs_user_pool: UserPool, fs_users: list[SessionUser]
) -> None:
    pool = UserPool(fs_user_pool.size, prefix=fs_user_pool.prefix)
    assert pool.enabled
    assert pool.user_for_slot(2) == pool.user_for_slot(2) == fs_users[1]
    for slot in (0, pool.size + 1):
        with pytest.raises(ValueError, match="outside"):
            pool.user_for_slot(slot)


def test_names_widen_for_pools_of_more_than_99_slots() -> None:
    assert UserPool(9).name_for_slot(1) == "cu-s01"
    assert UserPool(120).name_for_slot(7) == "cu-s007"


def test_a_missing_user_says_to_call_ensure() -> None:
    pool = UserPool(1, prefix="cu-never-created-")
    with pytest.raises(LookupError, match="ensure"):
        pool.user_for_slot(1)
