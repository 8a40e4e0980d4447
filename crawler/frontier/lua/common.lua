-- Shared by every script (prepended by crawler/frontier/redis.py). ARGV[1] is the crawl's key prefix.
-- A crawl's state is lost when its meta hash is missing (Redis restarted empty, or flushed).
local K = ARGV[1]
local META = K .. ':meta'
if redis.call('EXISTS', META) == 0 then
  return redis.error_reply('LOST the frontier has no state for this crawl')
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local settings = redis.call('HMGET', META, 'per_host', 'delay', 'epoch')
local per_host, delay, epoch = tonumber(settings[1]), tonumber(settings[2]), settings[3]
local READY, INFLIGHT, REST = K .. ':ready', K .. ':inflight', K .. ':rest'
local LEASES, LEASE = K .. ':leases', K .. ':lease'

local function bucket(fp) return K .. ':seen:' .. string.format('%02x%02x', string.byte(fp, 1, 2)) end
local function field(fp) return string.sub(fp, 3) end
local function queue(host) return K .. ':q:' .. host end

-- A host is in READY exactly when it has queued jobs and is under its cap; its score is when it may
-- next be claimed: no earlier than `due`, nor than the rest a release gave it.
local function schedule(host, due)
  local rest = redis.call('HGET', REST, host)
  if rest then
    if tonumber(rest) > due then due = tonumber(rest) else redis.call('HDEL', REST, host) end
  end
  local inflight = tonumber(redis.call('HGET', INFLIGHT, host) or '0')
  if inflight < per_host and redis.call('LLEN', queue(host)) > 0 then
    redis.call('ZADD', READY, 'GT', due, host)
  else
    redis.call('ZREM', READY, host)
  end
end

local function free_slot(host)
  if redis.call('HINCRBY', INFLIGHT, host, -1) <= 0 then redis.call('HDEL', INFLIGHT, host) end
end

-- A lease record: owner TAB host TAB released(0|1) TAB item (item = 12-byte fingerprint .. url, last
-- because the fingerprint is binary).
local function parse(record)
  local a = string.find(record, '\t', 1, true)
  local b = string.find(record, '\t', a + 1, true)
  local c = string.find(record, '\t', b + 1, true)
  return string.sub(record, 1, a - 1), string.sub(record, a + 1, b - 1), string.sub(record, b + 1, c - 1),
    string.sub(record, c + 1)
end

-- The lease `token` if `worker` holds it: (host, released, item), else nil.
local function held(token, worker)
  local record = redis.call('HGET', LEASE, token)
  if not record then return nil end
  local owner, host, released, item = parse(record)
  if owner ~= worker then return nil end
  return host, released, item
end

local function drop_lease(token)
  redis.call('ZREM', LEASES, token)
  redis.call('HDEL', LEASE, token)
  redis.call('HINCRBY', META, 'leased', -1)
end

-- A URL's value in its bucket: its depth while queued, c<depth> while claimed, d once done.
local function requeue(token, host, released, item)
  drop_lease(token)
  local fp = string.sub(item, 1, 12)
  local value = redis.call('HGET', bucket(fp), field(fp))
  if value and string.sub(value, 1, 1) == 'c' then redis.call('HSET', bucket(fp), field(fp), string.sub(value, 2)) end
  redis.call('LPUSH', queue(host), item)
  redis.call('HINCRBY', META, 'queued', 1)
  if released == '0' then free_slot(host) end
  schedule(host, now)
end

-- Requeue up to `max` expired leases (oldest deadline first); how many.
local function reap(max)
  local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, max)
  for _, token in ipairs(expired) do
    local record = redis.call('HGET', LEASE, token)
    if record then
      local _, host, released, item = parse(record)
      requeue(token, host, released, item)
    else
      redis.call('ZREM', LEASES, token)
    end
  end
  return #expired
end
