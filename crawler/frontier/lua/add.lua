-- add(K, fp, url, host, depth, ...): queue the URLs whose fingerprint is new; how many were.
local added, touched = 0, {}
for i = 2, #ARGV, 4 do
  local fp = ARGV[i]
  if redis.call('HSETNX', bucket(fp), field(fp), ARGV[i + 3]) == 1 then
    redis.call('RPUSH', queue(ARGV[i + 2]), fp .. ARGV[i + 1])
    added = added + 1
    touched[ARGV[i + 2]] = true
  end
end
if added > 0 then redis.call('HINCRBY', META, 'queued', added) end
for host in pairs(touched) do schedule(host, now) end
return added
