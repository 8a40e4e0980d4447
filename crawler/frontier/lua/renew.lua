-- renew(K, worker, lease_ms, token...): extend the leases `worker` still holds; return the lost tokens.
local worker, lease_ms, lost = ARGV[2], tonumber(ARGV[3]), {}
for i = 4, #ARGV do
  if held(ARGV[i], worker) then redis.call('ZADD', LEASES, 'XX', now + lease_ms, ARGV[i])
  else table.insert(lost, ARGV[i]) end
end
return lost
