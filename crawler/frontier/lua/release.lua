-- release(K, worker, token, rest_ms, ...): the fetches ended; each host's slot is free, and the host may
-- be claimed again once max(delay, rest) has passed. The leases stay until ack.
local worker = ARGV[2]
for i = 3, #ARGV, 2 do
  local host, released, item = held(ARGV[i], worker)
  if host and released == '0' then
    redis.call('HSET', LEASE, ARGV[i], worker .. '\t' .. host .. '\t1\t' .. item)
    free_slot(host)
    local due = now + math.max(delay, tonumber(ARGV[i + 1]))
    if due > now then redis.call('HSET', REST, host, due) end
    schedule(host, due)
  end
end
return 0
