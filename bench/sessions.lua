-- wrk script for bench/sessions_memory: GET the member path with a different session
-- cookie on each request, rotating over the first SAMPLE tokens of the file TOKENS (one
-- per line, written by examples/seed_sessions). The WRK_THREADS (default 2) threads start
-- at evenly spaced offsets in that list.
local threads = 0
function setup(thread)
    thread:set("id", threads)
    threads = threads + 1
end

local reqs = {}
local i = 0
function init(args)
    local sample = tonumber(os.getenv("SAMPLE"))
    for line in io.lines(os.getenv("TOKENS")) do
        if #reqs >= sample then break end
        reqs[#reqs + 1] = wrk.format("GET", "/courses/rust", { ["Cookie"] = "vigile_session=" .. line })
    end
    i = math.floor(id * #reqs / (tonumber(os.getenv("WRK_THREADS")) or 2))
end

function request()
    i = i + 1
    if i > #reqs then i = 1 end
    return reqs[i]
end
