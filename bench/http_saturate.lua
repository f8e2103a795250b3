-- wrk script of bench/http_saturate.py: a caseworker's timeline reads of many children and ledger pages, each
-- request with a bearer token of the centre's staff, closed loop (run with as many connections as threads: each
-- thread's one connection sends its next request when the answer came, so the request and its answer pair up).
-- Writes, at the end, one line per answer to TSUNAGU_WRK_OUT: kind, status, microseconds.
-- TSUNAGU_WRK_ADDRS ("host:port,host:port", the ports layout: one API process a port) gives thread i the address
-- i mod N (as wrk's scripts/addr.lua sets thread.addr), so that the clients are split evenly over the processes.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } tsunagu_timespec;
int clock_gettime(int clk_id, tsunagu_timespec *tp);
]]
local now = ffi.new("tsunagu_timespec")
local function micros()
  ffi.C.clock_gettime(1, now) -- CLOCK_MONOTONIC
  return tonumber(now.tv_sec) * 1e6 + tonumber(now.tv_nsec) / 1e3
end

local data = dofile(os.getenv("TSUNAGU_WRK_DATA"))
local threads = {}
local addresses = {}
for host, port in string.gmatch(os.getenv("TSUNAGU_WRK_ADDRS") or "", "([^,:]+):(%d+)") do
  table.insert(addresses, wrk.lookup(host, port)[1])
end

function setup(thread)
  if #addresses > 0 then
    thread.addr = addresses[(#threads % #addresses) + 1]
  end
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local kind, started
answers = {} -- "kind status micros", read by done() through thread:get

function init(args)
  math.randomseed(id * 7919 + 17)
end

function request()
  local headers = { Authorization = "Bearer " .. data.tokens[math.random(#data.tokens)] }
  local path
  if math.random() < data.ledger_share then
    kind = "ledger"
    path = "/v1/ledger?per_page=50&page=" .. math.random(data.pages) .. data.variants[math.random(#data.variants)]
  else
    kind = "timeline"
    path = "/v1/children/" .. data.children[math.random(#data.children)] .. "/timeline?purpose=support"
  end
  started = micros()
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  answers[#answers + 1] = kind .. " " .. status .. " " .. string.format("%.0f", micros() - started)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("TSUNAGU_WRK_OUT"), "w")
  for _, thread in ipairs(threads) do
    local lines = thread:get("answers")
    for _, line in ipairs(lines) do
      out:write(line, "\n")
    end
  end
  out:close()
end
