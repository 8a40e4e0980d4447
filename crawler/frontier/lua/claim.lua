-- claim(K, worker, n, lease_ms, reap_max, cap, excluded hosts...): first requeue up to reap_max expired
-- leases; then up to n jobs from the hosts due now, one per host per round, at most `cap` (>0) per host,
-- each with a lease. Returns {ms until the next host is due (-1: none), id, url, depth, token, ...}.
local worker, n, lease_ms, reap_max, cap = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6])
reap(reap_max)
local skip, skipped = {}, 0
for i = 7, #ARGV do skip[ARGV[i]] = true; skipped = skipped + 1 end
local out, taken, got = {0}, {}, 0
for _ = 1, n do
  if got >= n then break end
  local progress = false
  for _, host in ipairs(redis.call('ZRANGEBYSCORE', READY, '-inf', now, 'LIMIT', 0, n - got + skipped)) do
    if got >= n then break end
    if not skip[host] then
      local item = redis.call('LPOP', queue(host))
      if item then
        redis.call('HINCRBY', META, 'queued', -1)
        local fp = string.sub(item, 1, 12)
        local depth = redis.call('HGET', bucket(fp), field(fp))
        if depth and depth ~= 'd' then  -- ('d': a redirect chain landed on it while it was queued)
          redis.call('HSET', bucket(fp), field(fp), 'c' .. depth)
          local id = redis.call('HINCRBY', META, 'next', 1)
          local token = epoch .. ':' .. id
          redis.call('ZADD', LEASES, now + lease_ms, token)
          redis.call('HSET', LEASE, token, worker .. '\t' .. host .. '\t0\t' .. item)
          redis.call('HINCRBY', INFLIGHT, host, 1)
          redis.call('HINCRBY', META, 'leased', 1)
          table.insert(out, id); table.insert(out, string.sub(item, 13)); table.insert(out, depth)
          table.insert(out, token)
          got = got + 1
          taken[host] = (taken[host] or 0) + 1
          if cap > 0 and taken[host] >= cap then skip[host] = true; skipped = skipped + 1 end
        end
        progress = true
      end
      schedule(host, now + delay)
    end
  end
  if not progress then break end
end
local first = redis.call('ZRANGE', READY, 0, 0, 'WITHSCORES')
out[1] = first[2] and math.max(0, tonumber(first[2]) - now) or -1
return out
