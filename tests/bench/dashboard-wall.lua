-- wrk script for tests/bench/dashboard.sh: open Overview pages rather than a flood. Each
-- request is one of the Overview's three data requests (hosts, incidents, lines, in turn per
-- wrk thread), and every connection waits WP_WALL_DELAY_MS (default 1667 ms) before each
-- request, so C connections make C / 1.667 requests a second: C Overviews reloading their
-- three lists every 5 s, as dashboards/app.js does. The Authorization header comes from -H.
local paths = {"/api/v1/hosts", "/api/v1/incidents", "/api/v1/lines"}
local i = 0
local d = tonumber(os.getenv("WP_WALL_DELAY_MS") or "1667")

request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end

delay = function()
    return math.random(0, 2 * d)
end
