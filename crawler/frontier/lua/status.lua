-- status(K): {queued, leased}, read in one step.
local counts = redis.call('HMGET', META, 'queued', 'leased')
return {tonumber(counts[1] or '0'), tonumber(counts[2] or '0')}
