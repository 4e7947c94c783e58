"""The exact token of a Redis hash, list, set, zset or stream, computed on the server.

A conditional write compares what the operator saw with what the key holds now, so the
token must come from the exact content: every byte, every element. A string's bytes
travel anyway and are digested here (``base.content_token``); a collection is digested
by a Lua script on the server, so comparing a hash of 50,000 fields moves 40 bytes, not
the hash. The script takes one key (``KEYS[1]``), so it runs on that key's node of a
Redis Cluster, and answers ``{type, elements, token}``: the token is ``base.content_token``
of the same content, byte for byte (the contract and Redis tests check both agree), or ""
when the collection holds more than ``MAX_ELEMENTS`` (digesting it would block the server
too long: such a key cannot be verified, so no write is based on it).

Not ``DUMP``: its bytes depend on the encoding Redis chose (listpack or hashtable) and on
the order of a rehashed dictionary, so equal content can dump differently.

Order: a hash's pairs, a set's members and a zset's member/score pairs are digested one by
one and the hex digests sorted; Lua's ``<`` follows the server's ``LC_COLLATE``, which
orders fixed-length lowercase hex strings as bytes do. Scores are written ``%.17g`` on
both sides (exact for a double).
"""

from __future__ import annotations

#: elements above which a collection is not digested (its token is unverified): the
#: script holds the server about 6 µs per element (measured on the test machine: 1.2 s for
#: a hash of 200,000 fields), so at most about 0.1 s
MAX_ELEMENTS = 20_000

SCRIPT = """
local key, cap = KEYS[1], tonumber(ARGV[1])
local kind = redis.call('TYPE', key)['ok']
local sha = redis.sha1hex
local function lp(s) return #s .. ':' .. s end
local n, body
if kind == 'string' then
  body = redis.call('GET', key)
  n = #body
  return {kind, n, 'x' .. sha(kind .. '\\n' .. body)}
end
local counts = {hash = 'HLEN', set = 'SCARD', zset = 'ZCARD', list = 'LLEN', stream = 'XLEN'}
if counts[kind] == nil then
  return {kind, 0, ''}
end
n = redis.call(counts[kind], key)
if n > cap then
  return {kind, n, ''}
end
local parts = {}
if kind == 'hash' then
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do parts[#parts + 1] = sha(lp(flat[i]) .. lp(flat[i + 1])) end
  table.sort(parts)
elseif kind == 'set' then
  local members = redis.call('SMEMBERS', key)
  for i = 1, #members do parts[i] = sha(lp(members[i])) end
  table.sort(parts)
elseif kind == 'zset' then
  local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    parts[#parts + 1] = sha(lp(flat[i]) .. string.format('%.17g', tonumber(flat[i + 1])))
  end
  table.sort(parts)
elseif kind == 'list' then
  local items = redis.call('LRANGE', key, 0, -1)
  for i = 1, #items do parts[i] = lp(items[i]) end
else
  local entries = redis.call('XRANGE', key, '-', '+')
  for i = 1, #entries do
    local fields = entries[i][2]
    local part = {lp(entries[i][1]), (#fields / 2) .. ':'}
    for j = 1, #fields do part[#part + 1] = lp(fields[j]) end
    parts[i] = table.concat(part)
  end
end
return {kind, n, 'x' .. sha(kind .. '\\n' .. table.concat(parts))}
"""


def queue(pipe, raw_key: bytes) -> None:
    """Queue the digest of ``raw_key`` on a pipeline (one EVAL, routed by the key).

    As a raw command: redis-py's cluster pipeline refuses its ``eval`` method, yet routes
    an EVAL by its keys like any keyed command.
    """
    pipe.execute_command("EVAL", SCRIPT, 1, raw_key, MAX_ELEMENTS)


def parse(reply) -> tuple[str, int, str | None]:
    """(type, elements, token or None) from the script's answer."""
    kind, count, token = reply
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    token = token.decode() if isinstance(token, bytes) else str(token)
    return kind, int(count), token or None


__all__ = ["MAX_ELEMENTS", "SCRIPT", "parse", "queue"]
