-- load(K, ndone, fp..., then fp, url, host, depth, ...): a rebuild's batch, written before the crawl's meta
-- exists (so it does not include common.lua): done fingerprints, then queued URLs; how many were queued.
local K, ndone, added = ARGV[1], tonumber(ARGV[2]), 0
local function bucket(fp) return K .. ':seen:' .. string.format('%02x%02x', string.byte(fp, 1, 2)) end
for i = 3, 2 + ndone do redis.call('HSET', bucket(ARGV[i]), string.sub(ARGV[i], 3), 'd') end
for i = 3 + ndone, #ARGV, 4 do
  local fp = ARGV[i]
  if redis.call('HSETNX', bucket(fp), string.sub(fp, 3), ARGV[i + 3]) == 1 then
    redis.call('RPUSH', K .. ':q:' .. ARGV[i + 2], fp .. ARGV[i + 1])
    redis.call('ZADD', K .. ':ready', 'NX', 0, ARGV[i + 2])
    added = added + 1
  end
end
return added
