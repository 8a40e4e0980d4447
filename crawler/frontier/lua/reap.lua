-- reap(K, max): requeue up to `max` expired leases; how many.
return reap(tonumber(ARGV[2]))
