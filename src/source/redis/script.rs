//! The Lua scripts recon runs in Redis. A script runs atomically: reading a value's version token and
//! writing over it happen with nothing in between, which is what makes a write conditional.
//!
//! The version token ([`PRELUDE`]'s `peek`) is computed here and, identically, in Rust
//! ([`super::string_version`], [`super::hash_version`]): a string's is the SHA-1 of its bytes
//! (`redis.sha1hex`); a hash's the SHA-1 of its fields sorted by their bytes, each field and value
//! written as `LENGTH:BYTES`; another type's (a list, a set) is the SHA-1 of its `DUMP` serialization,
//! which is also what an undo `RESTORE`s. Lua has no xxh3, hence SHA-1.

/// What both scripts share: a byte-wise string order (Lua's `<` follows the server's locale) and
/// `peek(key, dump)`, which answers the type, the version token (false when absent) and the value. A
/// value of another type is answered by its `DUMP` serialization when `dump` is set, and otherwise only
/// by its type (`type:NAME`, a check's read: it never writes, and a large list need not cross the wire).
const PRELUDE: &str = r#"
local function less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function hash_token(flat)
  local order = {}
  for i = 1, #flat, 2 do order[#order + 1] = i end
  table.sort(order, function(i, j) return less(flat[i], flat[j]) end)
  local parts = {}
  for _, i in ipairs(order) do
    local f, v = flat[i], flat[i + 1]
    parts[#parts + 1] = #f .. ':' .. f .. #v .. ':' .. v
  end
  return redis.sha1hex(table.concat(parts))
end
local function peek(key, dump)
  local t = redis.call('TYPE', key)['ok']
  if t == 'string' then
    local v = redis.call('GET', key)
    return t, redis.sha1hex(v), v
  elseif t == 'hash' then
    local flat = redis.call('HGETALL', key)
    return t, hash_token(flat), flat
  elseif t == 'none' then
    return t, false, false
  elseif dump then
    local d = redis.call('DUMP', key)
    return t, redis.sha1hex(d), d
  end
  return t, 'type:' .. t, false
end
"#;

/// `KEYS[1]`; `ARGV[1]`: `1` to answer another type's value by its `DUMP`. Answers `{type, token,
/// value}` (value: the string, the hash's flat field/value list, or the `DUMP`).
pub static PEEK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{PRELUDE}\nlocal t, token, value = peek(KEYS[1], ARGV[1] == '1')\nreturn {{t, token, value}}\n")
});

/// One conditional write. `KEYS[1]`: the Redis key. `ARGV[1]`: create, index, update or delete;
/// `ARGV[2]`: the version token the write expects ('' for none); `ARGV[3]`: what is written, `string`,
/// `hash` or `dump`; `ARGV[4]`: the string, or for a hash the number N of fields to remove, then those N
/// fields, then field/value pairs to set, or a `DUMP` serialization to `RESTORE` (an undo putting back
/// a value of another type). A create applies only where the key is absent; the others
/// only where it holds the expected version (an absent key conflicts). An index of a hash replaces
/// every field; an update sets and removes only those given (of a hash; anything else it replaces).
/// Answers `{'conflict', why}`, `{'created'|'updated'|'deleted', new token}`, or `{'already', token}`
/// for a write whose condition fails because the key already holds what it writes (the same write,
/// sent again after its answer was lost: a retried batch needs no read-back to know it applied).
pub static WRITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{PRELUDE}{}",
        r#"
local key, action, want = KEYS[1], ARGV[1], ARGV[2]
local t, token = peek(key, true)
-- Whether the key already holds what this write would leave there.
local function holds()
  if ARGV[3] == 'string' then return t == 'string' and redis.call('GET', key) == ARGV[4] end
  if ARGV[3] == 'dump' then return redis.call('DUMP', key) == ARGV[4] end
  if t ~= 'hash' then return false end
  local n = tonumber(ARGV[4])
  for i = 5, 4 + n do
    if redis.call('HEXISTS', key, ARGV[i]) == 1 then return false end
  end
  local set = 0
  for i = 5 + n, #ARGV, 2 do
    if redis.call('HGET', key, ARGV[i]) ~= ARGV[i + 1] then return false end
    set = set + 1
  end
  return action == 'update' or redis.call('HLEN', key) == set
end
local conflict
if action == 'create' then
  if token then conflict = 'the key exists (a Redis ' .. t .. ')' end
elseif not token then
  conflict = 'the key is gone'
elseif want ~= '' and token ~= want then
  conflict = 'the value changed since it was read'
end
if conflict then
  -- Sent again after its answer was lost, a write finds its own result: done, not a conflict.
  if action ~= 'delete' and token and holds() then return {'already', token} end
  return {'conflict', conflict}
end
if action == 'delete' then
  redis.call('DEL', key)
  return {'deleted'}
end
if ARGV[3] == 'string' then
  redis.call('SET', key, ARGV[4])
elseif ARGV[3] == 'dump' then
  redis.call('DEL', key)
  redis.call('RESTORE', key, 0, ARGV[4])
else
  if action ~= 'update' or t ~= 'hash' then redis.call('DEL', key) end
  local n = tonumber(ARGV[4])
  if n > 0 then redis.call('HDEL', key, unpack(ARGV, 5, 4 + n)) end
  if #ARGV > 4 + n then redis.call('HSET', key, unpack(ARGV, 5 + n)) end
end
local _, after = peek(key, true)
if action == 'create' then return {'created', after} end
return {'updated', after}
"#
    )
});
