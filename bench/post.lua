-- wrk script for bench/rest_bench.sh: every request is an authenticated
-- POST /rooms/:id/messages with a JSON body whose content is unique
-- ("bench <tag> <thread>-<n>"), so each acknowledged message can be looked up
-- in the database afterwards.
--
-- Environment:
--   BENCH_TOKEN    JWT sent as "Authorization: Bearer ..." (required)
--   BENCH_ROOM     room id (default 1)
--   BENCH_TAG      word put in every content, to tell runs apart (default "run")
--   BENCH_ACK_DIR  if set, each thread writes the content of every 201 it
--                  receives to BENCH_ACK_DIR/acked.<thread>, one per line
--
-- done() prints one line starting with "RESULT " (key=value pairs) that
-- rest_bench.sh parses; only 201 responses count as acknowledged posts.

local token = os.getenv("BENCH_TOKEN")
local room = os.getenv("BENCH_ROOM") or "1"
local tag = os.getenv("BENCH_TAG") or "run"
local ack_dir = os.getenv("BENCH_ACK_DIR")

local threads = {}
local next_thread_id = 0

function setup(thread)
   thread:set("thread_id", next_thread_id)
   next_thread_id = next_thread_id + 1
   table.insert(threads, thread)
end

-- Per-thread state (each wrk thread runs its own Lua state).
local path = "/rooms/" .. room .. "/messages"
local headers = {
   ["Content-Type"] = "application/json",
   ["Authorization"] = "Bearer " .. (token or ""),
}
local prefix
local seq = 0
local ack_file
statuses = {}
status_201 = 0
status_other = 0
ack_unparsed = 0

function init(args)
   if token == nil or token == "" then
      io.stderr:write("post.lua: BENCH_TOKEN is not set\n")
      os.exit(2)
   end
   prefix = '{"content":"bench ' .. tag .. " " .. thread_id .. "-"
   if ack_dir ~= nil and ack_dir ~= "" then
      local name = ack_dir .. "/acked." .. thread_id
      ack_file = io.open(name, "w")
      if ack_file == nil then
         io.stderr:write("post.lua: cannot write " .. name .. "\n")
         os.exit(2)
      end
   end
end

function request()
   seq = seq + 1
   return wrk.format("POST", path, headers, prefix .. seq .. '"}')
end

function response(status, hdrs, body)
   if status == 201 then
      status_201 = status_201 + 1
      if ack_file ~= nil then
         local content = body and body:match('"content"%s*:%s*"(bench [^"]*)"')
         if content then
            ack_file:write(content, "\n")
         else
            ack_unparsed = ack_unparsed + 1
         end
      end
   else
      status_other = status_other + 1
      statuses[status] = (statuses[status] or 0) + 1
      if status_other <= 3 then
         io.stderr:write("post.lua: HTTP " .. status .. ": " .. tostring(body) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local n201, nother, unparsed = 0, 0, 0
   local by_status = {}
   for _, t in ipairs(threads) do
      n201 = n201 + (t:get("status_201") or 0)
      nother = nother + (t:get("status_other") or 0)
      unparsed = unparsed + (t:get("ack_unparsed") or 0)
      for s, n in pairs(t:get("statuses") or {}) do
         by_status[s] = (by_status[s] or 0) + n
      end
   end
   local other = {}
   for s, n in pairs(by_status) do
      table.insert(other, s .. ":" .. n)
   end
   table.sort(other)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d status_201=%d status_other=%d" ..
      " other_statuses=%s ack_unparsed=%d p50_us=%d p90_us=%d p99_us=%d" ..
      " max_us=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, summary.duration, n201, nother,
      (#other > 0) and table.concat(other, ",") or "-", unparsed,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, e.connect, e.read, e.write, e.timeout))
end
