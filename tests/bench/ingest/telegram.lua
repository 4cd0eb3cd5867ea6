-- wrk script: signed Telegram updates with distinct ids.
-- wrk ... -s telegram.lua -- <run number> <delay ms per connection, 0 = none>
local threads = {}
local counter = 0
local prefix = 0
local pause = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local run = tonumber(args[1] or "0")
  pause = tonumber(args[2] or "0")
  -- Ids never repeat across runs and threads: de-duplication must not
  -- make the benchmark cheaper than real traffic.
  prefix = (run * 64 + tid) * 100000000
end

function request()
  counter = counter + 1
  local id = prefix + counter
  local user = id % 5000
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,' ..
    '"first_name":"Bench","username":"bench%d"},"chat":{"id":%d,"type":"private"},' ..
    '"date":1795500000,"text":"Hello, where is my order %d? It was due yesterday."}}',
    id, id, user, user, user, id)
  return wrk.format("POST", nil, nil, body)
end

function delay()
  return pause
end
