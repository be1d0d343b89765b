-- One atomic mutation of one object: the compare-and-swap that plays etcd's role.
--
-- KEYS: 1 objects hash, 2 versions hash, 3 revision counter, 4 watch stream,
--       5 watch floor, 6 request-id record, 7 node stream, 8 node floor,
--       9 counted hash, 10 allocated hash, 11 capacity hash   (all one hash tag)
-- ARGV: 1 op ("put" | "delete"), 2 field (namespace/name), 3 expected resourceVersion
--       ("0" = must not exist, "*" = must exist, otherwise must equal),
--       4 encoded object, 5 watch event type, 6 stream cap, 7 trim batch,
--       8 request id ("" = none), 9 request record ttl (s), 10 node ("" = none),
--       11 node event type, 12 accounting ("" or "node|cpu_milli|memory_bytes"),
--       13 "1" to refuse an accounting that overcommits its node
-- Returns {status, detail}: ok/rev, dup/rev, exists/rv, notfound/"", conflict/rv,
-- nonode/node, overcommit/reason.

local field = ARGV[2]
local expected = ARGV[3]
local cap = tonumber(ARGV[6])
local batch = tonumber(ARGV[7])

if ARGV[8] ~= '' then
  local done = redis.call('GET', KEYS[6])
  if done then return {'dup', done} end
end

local current = redis.call('HGET', KEYS[2], field)
if expected == '0' then
  if current then return {'exists', current} end
else
  if not current then return {'notfound', ''} end
  if expected ~= '*' and expected ~= current then return {'conflict', current} end
end

-- Capacity accounting of pods against their node: kept in step with the object.
local account = ARGV[12]
if ARGV[1] == 'delete' then account = '' end
local previous = redis.call('HGET', KEYS[9], field) or ''
if previous ~= account then
  if account ~= '' and ARGV[13] == '1' then
    local node, cpu, mem = string.match(account, '^(.*)|(%d+)|(%d+)$')
    local capacity = redis.call('HGET', KEYS[11], node)
    if not capacity then return {'nonode', node} end
    local ccpu, cmem, cpods = string.match(capacity, '^(%d+)|(%d+)|(%d+)$')
    local ucpu = tonumber(redis.call('HGET', KEYS[10], node .. '|cpu') or '0')
    local umem = tonumber(redis.call('HGET', KEYS[10], node .. '|memory') or '0')
    local upods = tonumber(redis.call('HGET', KEYS[10], node .. '|pods') or '0')
    if ucpu + tonumber(cpu) > tonumber(ccpu) then
      return {'overcommit', 'Insufficient cpu'}
    end
    if umem + tonumber(mem) > tonumber(cmem) then
      return {'overcommit', 'Insufficient memory'}
    end
    if upods + 1 > tonumber(cpods) then return {'overcommit', 'Too many pods'} end
  end
  if previous ~= '' then
    local node, cpu, mem = string.match(previous, '^(.*)|(%d+)|(%d+)$')
    redis.call('HINCRBY', KEYS[10], node .. '|cpu', 0 - tonumber(cpu))
    redis.call('HINCRBY', KEYS[10], node .. '|memory', 0 - tonumber(mem))
    redis.call('HINCRBY', KEYS[10], node .. '|pods', -1)
    redis.call('HDEL', KEYS[9], field)
  end
  if account ~= '' then
    local node, cpu, mem = string.match(account, '^(.*)|(%d+)|(%d+)$')
    redis.call('HINCRBY', KEYS[10], node .. '|cpu', tonumber(cpu))
    redis.call('HINCRBY', KEYS[10], node .. '|memory', tonumber(mem))
    redis.call('HINCRBY', KEYS[10], node .. '|pods', 1)
    redis.call('HSET', KEYS[9], field, account)
  end
end

local rev = redis.call('INCR', KEYS[3])
local id = rev .. '-0'
if ARGV[1] == 'delete' then
  redis.call('HDEL', KEYS[1], field)
  redis.call('HDEL', KEYS[2], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[4])
  redis.call('HSET', KEYS[2], field, rev)
end

-- Trimming is compaction: the floor records the newest revision no longer present,
-- so a watch from before it answers 410 Gone.
local function append(stream, floor, event_type)
  redis.call('XADD', stream, id, 'type', event_type, 'key', field, 'rv', rev, 'obj', ARGV[4])
  if redis.call('XLEN', stream) >= cap + batch then
    redis.call('XTRIM', stream, 'MAXLEN', cap)
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    local first_rev = tonumber(string.match(first[1][1], '^(%d+)'))
    redis.call('SET', floor, first_rev - 1)
  end
end

append(KEYS[4], KEYS[5], ARGV[5])
if ARGV[10] ~= '' then append(KEYS[7], KEYS[8], ARGV[11]) end
if ARGV[8] ~= '' then redis.call('SET', KEYS[6], rev, 'EX', tonumber(ARGV[9])) end
return {'ok', tostring(rev)}
