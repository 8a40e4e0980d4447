-- done(K, worker, ntokens, token..., fp...): ack the leases `worker` still holds (their URLs are done);
-- mark the fingerprints after the tokens done (where redirect chains landed). Returns {refused acks,
-- tokens of an earlier epoch...}: claimed before a rebuild, whose links the rebuild may not have known.
local worker, count, stale, earlier = ARGV[2], tonumber(ARGV[3]), 0, {}
local mine = epoch .. ':'
for i = 4, 3 + count do
  local host, released, item = held(ARGV[i], worker)
  if host then
    drop_lease(ARGV[i])
    local fp = string.sub(item, 1, 12)
    redis.call('HSET', bucket(fp), field(fp), 'd')
    if released == '0' then free_slot(host) end
    schedule(host, now)
  else
    stale = stale + 1
    if string.sub(ARGV[i], 1, #mine) ~= mine then table.insert(earlier, ARGV[i]) end
  end
end
for i = 4 + count, #ARGV do redis.call('HSET', bucket(ARGV[i]), field(ARGV[i]), 'd') end
table.insert(earlier, 1, stale)
return earlier
