-- wrk script: each request carries the next token of the file $TOKENS (one per line), as
-- `Authorization: Bearer …`; threads start at different offsets. With $TOKENS unset, no token
-- is sent. Every scenario uses this script, so the client does the same work in each; refusals
-- show up in wrk's "Non-2xx or 3xx responses" line, which http_bench.sh checks.
local tokens = {}
local path = os.getenv("TOKENS")
if path and path ~= "" then
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
end

local counter = 0
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

local i = 0
function init(args)
  if #tokens > 0 then
    i = (offset * 2503) % #tokens
  end
end

function request()
  if #tokens == 0 then
    return wrk.format("GET", "/echo")
  end
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("GET", "/echo", { ["Authorization"] = "Bearer " .. tokens[i] })
end
