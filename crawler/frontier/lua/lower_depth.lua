-- lower_depth(K, fp, depth, ...): a URL still queued takes the smaller depth (a claimed one, c<depth>,
-- and a done one, d, keep theirs).
for i = 2, #ARGV, 2 do
  local key, f = bucket(ARGV[i]), field(ARGV[i])
  local depth = redis.call('HGET', key, f)
  if depth and tonumber(depth) and tonumber(depth) > tonumber(ARGV[i + 1]) then redis.call('HSET', key, f, ARGV[i + 1]) end
end
return 0
