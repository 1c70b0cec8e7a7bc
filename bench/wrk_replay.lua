-- wrk script: replays GET requests listed in a file, one per line as
-- "path<TAB>bearer token<TAB>client address"; thread k of n takes lines k, k + n, ...
-- (so no two connections send the same line), cycling through its share. Prints one JSON
-- line of results when done. Usage: wrk -s wrk_replay.lua URL -- FILE THREADS
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local n = tonumber(args[2])
   requests = {}
   local k = 0
   for line in io.lines(args[1]) do
      if k % n == id then
         local path, token, address = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
         requests[#requests + 1] = wrk.format("GET", path, {
            ["Authorization"] = "Bearer " .. token, ["X-Forwarded-For"] = address})
      end
      k = k + 1
   end
   position = 0
end

function request()
   position = position % #requests + 1
   return requests[position]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p99_ms": %.2f, ' ..
      '"non_2xx": %d, "socket_errors": %d}\n',
      summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
      latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
