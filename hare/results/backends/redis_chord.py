"""Chord counting in Redis with Celery's keys, so hare and Celery workers can share a chord.

The scripts are Celery 5.7's (`celery/backends/redis.py`, BSD licence), with one addition:
the chord size `<group key>.s` is set from the part's own count when no client set it (a
Celery client sets it when it applies the chord; a hare worker knows it from the message).

Keys, for group id `g` (prefix `celery-taskset-meta-g`): `.j` the parts, a sorted set of
`[1, task_id, state, result]` scored by group index; `.t` parts added by task replacement;
`.s` the header's size; `.d` the parts already counted (`task_id:index`), so a redelivered
part counts once; `.c` the claim: the one process whose part completed the header holds it
while it publishes the body, and the cleanup turns it into `done` for good.
"""

from __future__ import annotations

from hare.results.celery_format import GROUP_KEY_PREFIX

__all__ = ("CHORD_CLEANUP_LUA", "CHORD_PART_LUA", "chord_keys")

# ARGV: task id, entry, ordered ('1': sorted set), score, expires, group expires, claim
# expires, claim token, size. Returns {ready count, total diff, size, claimed}; ready count
# -1 when the chord is done already.
CHORD_PART_LUA = """
local jkey, tkey, skey, dkey, gkey, ckey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local tid, value, ordered, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, group_expires = tonumber(ARGV[5]), tonumber(ARGV[6])
local claim_expires = tonumber(ARGV[7])
local claim_token = ARGV[8]
local size_given = ARGV[9]

local done_marker = redis.call('GET', ckey)
if done_marker == 'done' then
    return {-1, 0, 0, 0}
end

if size_given and size_given ~= '' and not redis.call('GET', skey) then
    redis.call('SET', skey, size_given)
end

local member = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, member) == 0 then
    if ordered == '1' then
        redis.call('ZADD', jkey, score, value)
    else
        redis.call('RPUSH', jkey, value)
    end
    redis.call('SADD', dkey, member)
end
local readycount
if ordered == '1' then
    readycount = redis.call('ZCOUNT', jkey, '-inf', '+inf')
else
    readycount = redis.call('LLEN', jkey)
end
if expires > 0 then
    for _, key in ipairs({jkey, tkey, skey, dkey}) do
        redis.call('EXPIRE', key, expires)
    end
    if group_expires > 0 then
        redis.call('EXPIRE', gkey, group_expires)
    end
end

local totaldiff = redis.call('GET', tkey)
local size = redis.call('GET', skey)
local claimed = 0
if size and readycount == tonumber(size) + tonumber(totaldiff or 0) then
    if redis.call('SET', ckey, claim_token, 'NX', 'EX', claim_expires) then
        claimed = 1
    end
end

return {readycount, totaldiff, size, claimed}
"""

# KEYS: claim, parts, total diff, size, counted; ARGV: claim token, seconds to keep `done`,
# '1' when the chord failed: its parts (and added count) stay, as Celery keeps them.
CHORD_CLEANUP_LUA = """
local ckey = KEYS[1]
local jkey = KEYS[2]
local tkey = KEYS[3]
local skey = KEYS[4]
local dkey = KEYS[5]
local token = ARGV[1]
local done_expires = tonumber(ARGV[2])

if redis.call('GET', ckey) == token then
    if ARGV[3] == '1' then
        redis.call('DEL', skey, dkey)
    else
        redis.call('DEL', jkey, tkey, skey, dkey)
    end
    if done_expires and done_expires > 0 then
        redis.call('SET', ckey, 'done', 'EX', done_expires)
    end
    return 1
end
return 0
"""


def chord_keys(group_id: str) -> dict[str, str]:
    """The keys of `group_id`'s chord, by suffix (`""` is the group's own key)."""
    if not group_id:
        raise ValueError("a chord needs a group id")
    base = GROUP_KEY_PREFIX + group_id
    return {suffix: base + suffix for suffix in ("", ".j", ".t", ".s", ".d", ".c")}
