-- give_back(K, worker, token...): requeue (at the head of its host's queue) each job `worker` still
-- holds. Returns the refused ones.
local worker, stale = ARGV[2], 0
for i = 3, #ARGV do
  local host, released, item = held(ARGV[i], worker)
  if host then requeue(ARGV[i], host, released, item) else stale = stale + 1 end
end
return stale
