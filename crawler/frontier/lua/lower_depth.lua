-- lower_depth(K, fp, depth, ...): a URL not done takes the smaller depth.
for i = 2, #ARGV, 2 do
  local key, f = bucket(ARGV[i]), field(ARGV[i])
  local depth = redis.call('HGET', key, f)
  if depth and depth ~= 'd' and tonumber(depth) > tonumber(ARGV[i + 1]) then redis.call('HSET', key, f, ARGV[i + 1]) end
end
return 0
