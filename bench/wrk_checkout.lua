-- wrk script: POSTs the bodies listed in a file, one "path<TAB>JSON" a line, thread k of
-- n taking lines k, k + n, ... in turn, each request with a fresh Idempotency-Key (the
-- run's prefix, the thread, a counter); counts the 201 answers and the won they report.
-- Prints one JSON line of results when done.
-- Usage: wrk -s wrk_checkout.lua URL -- TOKEN FILE THREADS KEY_PREFIX
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   token, prefix = args[1], args[4]
   local n = tonumber(args[3])
   local lines = {}
   for line in io.lines(args[2]) do
      lines[#lines + 1] = line
   end
   paths, bodies = {}, {}
   for k = 1, #lines do
      -- a list shorter than the threads (one voucher): every thread takes all of it
      if (k - 1) % n == id or #lines < n then
         local path, body = lines[k]:match("^([^\t]+)\t(.+)$")
         paths[#paths + 1], bodies[#bodies + 1] = path, body
      end
   end
   position, sent, created, won = 0, 0, 0, 0
end

function request()
   position = position % #bodies + 1
   sent = sent + 1
   return wrk.format("POST", paths[position], {
      ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = prefix .. "-" .. id .. "-" .. sent}, bodies[position])
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
      won = won + tonumber(body:match('"amount_krw":%s*(%d+)'))
   end
end

function done(summary, latency, requests)
   local total_created, total_won = 0, 0
   for _, thread in ipairs(threads) do
      total_created = total_created + thread:get("created")
      total_won = total_won + thread:get("won")
   end
   io.write(string.format(
      '{"requests": %d, "seconds": %.3f, "created": %d, "won": %d, "non_2xx": %d, ' ..
      '"socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
      summary.requests, summary.duration / 1e6, total_created,
      total_won, summary.errors.status, summary.errors.connect + summary.errors.read +
      summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000))
end
