"""The Lua scripts of :class:`polyroute.cache.redis_index.RedisIndex` (each one atomic
across replicas, one round trip): ``ADD`` stores an entry, ``SYNC`` brings a process's
mirror of a scope up to date, ``EXACT`` answers a word-for-word repeat.  The key layout
and the protocol are in the ``redis_index`` module docstring."""

from __future__ import annotations

ADD = """
local z, v, eprefix, xprefix, q, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, vec, text, answer = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, expires, ttl_ms, cap = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local digest = ARGV[9]
local function drop(old)
  redis.call('HDEL', v, old)
  redis.call('ZREM', q, old)
  local x = redis.call('HGET', eprefix .. old, 'x')
  if x and redis.call('GET', xprefix .. x) == old then
    redis.call('DEL', xprefix .. x)
  end
  redis.call('DEL', eprefix .. old)
end
local stale = redis.call('ZRANGEBYSCORE', z, '-inf', now)
for _, old in ipairs(stale) do
  drop(old)
end
redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
if redis.call('HSETNX', n, 'epoch', id) == 1 then
  redis.call('DEL', q)
end
redis.call('ZADD', q, redis.call('HINCRBY', n, 'seq', 1), id)
redis.call('ZADD', z, expires, id)
redis.call('HSET', v, id, vec)
redis.call('HSET', eprefix .. id, 't', text, 'a', answer, 'x', digest)
redis.call('PEXPIRE', eprefix .. id, ttl_ms)
redis.call('SET', xprefix .. digest, id, 'PX', ttl_ms)
local extra = redis.call('ZCARD', z) - cap
if extra > 0 then
  local victims = redis.call('ZPOPMIN', z, extra)
  for i = 1, #victims, 2 do
    drop(victims[i])
  end
end
for _, key in ipairs({z, v, q, n}) do
  redis.call('PEXPIRE', key, ttl_ms)
end
return 1
"""
# A new epoch (the ``n`` hash was missing: a new scope, or its keys flushed or expired)
# restarts the sequence at 1, so ``q`` restarts too: the ids it held would come back
# as new on every lookup.  Entries still in ``z`` stay readable: every reader of the old
# epoch (or of none) reads the new one in full.

SYNC = """
local n, q, z, v = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local since, cap, inline = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local head = redis.call('HMGET', n, 'seq', 'epoch')
local seq, epoch = tonumber(head[1]) or 0, head[2] or ''
local out = {epoch, tostring(seq)}
if epoch == ARGV[1] and since <= seq and seq - since <= cap then
  out[3] = 'delta'
  if seq > since then
    local ids = redis.call('ZRANGEBYSCORE', q, '(' .. ARGV[2], '+inf')
    for _, id in ipairs(ids) do
      local expires, vec = redis.call('ZSCORE', z, id), ''
      if #ids <= inline then
        vec = redis.call('HGET', v, id)
      end
      if expires and vec then
        out[#out + 1], out[#out + 2], out[#out + 3] = id, expires, vec
      end
    end
  end
  return out
end
out[3] = 'full'
out[4] = redis.call('ZRANGE', z, -cap, -1, 'WITHSCORES')
return out
"""
# The reply: epoch, seq, then 'delta' and (id, expiry, vector) triples (the vector ''
# in a delta of more than ARGV[4] ids), or 'full' and the ``ZRANGE`` reply as it is
# (id, expiry pairs: no copy through a Lua table).

#: A delta of at most this many entries carries their vectors (one round trip); a bigger
#: one, and a full listing, carries ids and expiries, and the vectors not mirrored come
#: with one ``HMGET``: copying thousands of vectors through a Lua table is slower (for
#: 10,000 of 384 dims, 80-115 ms against 35 ms for ``ZRANGE`` + ``HMGET``).
INLINE = 64

EXACT = """
local id = redis.call('GET', KEYS[1])
if id then
  local expires = redis.call('ZSCORE', KEYS[2], id)
  if expires and tonumber(expires) > tonumber(ARGV[1]) then
    return redis.call('HMGET', KEYS[3] .. id, 't', 'a')
  end
end
return redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
"""
# The reply: the entry's text and answer, or (no live entry for this text) how many live
# entries the scope holds: 0 tells the caller a semantic lookup cannot hit.
