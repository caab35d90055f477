-- kws's route table inside nginx. Written by kws (kws-proxy, src/nginx/kws_routes.lua): do not
-- edit, kws rewrites it.
--
-- Routes live in the shared dictionary `kws_routes`, which every worker reads at request time:
-- key = host, value = "<upstream> <mode> <scheme>". kws changes them through the admin server
-- (POST /kws/routes: one batch per request, checked whole before any of it applies, undone whole
-- if the table has no room) and persists every batch in its journal, which `load` reads when
-- nginx starts. A reload (HUP) keeps the dictionary; nothing is read again then.
--
-- A line of a batch or of the journal:
--   + <host> <upstream> <mode> <scheme>   publish or replace (mode: app | app_ws | ide;
--                                         scheme: tls | plain)
--   - <host>                              unpublish
-- The journal also has "." lines, each closing one committed batch (a batch without its "."
-- was cut by a crash and is skipped), and "#" comment lines.

local M = {}

-- Not a hostname (it has a space): marks a dictionary already filled from the journal.
local LOADED = " loaded"

local MODES = { app = true, app_ws = true, ide = true }
local SCHEMES = { tls = true, plain = true }

local function routes()
    return ngx.shared.kws_routes
end

local function valid_host(host)
    return #host <= 253
        and host:find("^[a-z0-9][a-z0-9.-]*[a-z0-9]$") ~= nil
        and host:find("..", 1, true) == nil
end

-- An IP literal and a port, exactly as kws writes a SocketAddr: never a name to resolve.
local function valid_upstream(upstream)
    local a, b, c, d, port = upstream:match("^(%d+)%.(%d+)%.(%d+)%.(%d+):(%d+)$")
    if a then
        for _, octet in ipairs({ a, b, c, d }) do
            if #octet > 3 or tonumber(octet) > 255 then
                return false
            end
        end
    else
        port = upstream:match("^%[[%x:.]+%]:(%d+)$")
        if not port then
            return false
        end
    end
    return #port <= 5 and tonumber(port) >= 1 and tonumber(port) <= 65535
end

-- One line as { host, value } (value false for an unpublish), or nil and why.
local function parse_line(line)
    local op, host, rest = line:match("^([+-]) (%S+)(.*)$")
    if not op then
        return nil, "not \"+ <host> ...\" or \"- <host>\""
    end
    if not valid_host(host) then
        return nil, "bad host " .. host
    end
    if op == "-" then
        if rest ~= "" then
            return nil, "an unpublish line has only a host"
        end
        return { host, false }
    end
    local upstream, mode, scheme = rest:match("^ (%S+) (%S+) (%S+)$")
    if not upstream then
        return nil, "expected \"+ <host> <upstream> <mode> <scheme>\""
    end
    if not valid_upstream(upstream) then
        return nil, "bad upstream " .. upstream
    end
    if not MODES[mode] then
        return nil, "bad mode " .. mode
    end
    if not SCHEMES[scheme] then
        return nil, "bad scheme " .. scheme
    end
    return { host, upstream .. " " .. mode .. " " .. scheme }
end

-- Every line of a batch, or nil and the first bad line.
local function parse_batch(text)
    local ops, n = {}, 0
    for line in text:gmatch("[^\n]+") do
        n = n + 1
        local op, err = parse_line(line)
        if not op then
            return nil, "line " .. n .. ": " .. err
        end
        ops[#ops + 1] = op
    end
    return ops
end

-- Applies `ops` in order; if the table has no room for one, undoes the batch and returns nil
-- and why. `safe_set` never evicts another route to make room.
local function apply(ops)
    local dict = routes()
    local undo = {}
    for i, op in ipairs(ops) do
        local host, value = op[1], op[2]
        undo[i] = { host, dict:get(host) }
        local ok, err = true, nil
        if value then
            ok, err = dict:safe_set(host, value)
        else
            dict:delete(host)
        end
        if not ok then
            for j = i, 1, -1 do
                local h, old = undo[j][1], undo[j][2]
                if old then
                    dict:safe_set(h, old)
                else
                    dict:delete(h)
                end
            end
            return nil, "route table: " .. tostring(err) .. " (capacity " .. dict:capacity()
                .. " bytes, " .. dict:free_space() .. " free) at " .. host
        end
    end
    return #ops
end

-- Removes every route that `ops` does not publish (after a full sync).
local function keep_only(ops)
    local keep = {}
    for _, op in ipairs(ops) do
        keep[op[1]] = true
    end
    local dict = routes()
    for _, host in ipairs(dict:get_keys(0)) do
        if host ~= LOADED and not keep[host] then
            dict:delete(host)
        end
    end
end

-- init_by_lua: fills the table from kws's journal once per start of nginx (a reload keeps it).
function M.load(path)
    local dict = routes()
    if dict:get(LOADED) then
        return
    end
    local file = io.open(path, "r")
    if file then
        local pending, n = {}, 0
        for line in file:lines() do
            n = n + 1
            if line == "." then
                local ok, err = apply(pending)
                if not ok then
                    ngx.log(ngx.ERR, "kws: ", path, ":", n, ": ", err)
                end
                pending = {}
            elseif line:sub(1, 1) ~= "#" then
                local op, err = parse_line(line)
                if op then
                    pending[#pending + 1] = op
                else
                    ngx.log(ngx.ERR, "kws: ", path, ":", n, ": ", err)
                end
            end
        end
        file:close()
    end
    dict:safe_set(LOADED, true)
end

-- Whether an IDE gate checks IDE routes (set by http.conf's init_by_lua).
M.gate = false

-- The names of the IDE hosts' cookie (with TLS and without).
local GATE_COOKIES = { ["__Host-kws_ide"] = true, kws_ide = true }

-- Takes the IDE cookie out of the request's Cookie header into $kws_gate_cookie: the gate
-- gets it, the IDE (whose code its users run) never sees it.
local function take_gate_cookie()
    local header = ngx.var.http_cookie
    if not header then
        return
    end
    local kept, taken = {}, {}
    for pair in header:gmatch("[^;]+") do
        local name = pair:match("^%s*([^=%s]+)")
        if name and GATE_COOKIES[name] then
            taken[#taken + 1] = pair:match("^%s*(.-)%s*$")
        else
            kept[#kept + 1] = pair:match("^%s*(.-)%s*$")
        end
    end
    ngx.var.kws_gate_cookie = table.concat(taken, "; ")
    ngx.req.set_header("Cookie", #kept > 0 and table.concat(kept, "; ") or nil)
end

-- rewrite_by_lua of kws's servers: proxies to the route of $host through the named location of
-- its mode, redirects a TLS route's plain HTTP request, answers 404 to any other host. With a
-- gate, an IDE host's /_kws/enter goes to the gate (the rest of /_kws/ is 404), and its
-- cookie is taken out of the request.
function M.route(https)
    local value = routes():get(ngx.var.host)
    if type(value) ~= "string" then
        return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
    local upstream, mode, scheme = value:match("^(%S+) (%S+) (%S+)$")
    if https then
        if scheme ~= "tls" then
            return ngx.exit(ngx.HTTP_NOT_FOUND)
        end
    elseif scheme == "tls" then
        return ngx.exec("@kws_redirect")
    end
    ngx.var.kws_upstream = upstream
    if mode == "ide" and M.gate then
        take_gate_cookie()
        -- Only the gate's page is public; its check answers the proxy alone.
        if ngx.var.uri == "/_kws/enter" then
            return ngx.exec("@kws_gate")
        elseif ngx.var.uri:sub(1, 6) == "/_kws/" then
            return ngx.exit(ngx.HTTP_NOT_FOUND)
        end
    end
    return ngx.exec("@kws_" .. mode)
end

-- ssl_certificate_by_lua: refuses the handshake of a name that no TLS route holds, so an
-- unknown host never even sees the certificate. A resumed TLS session skips this callback; its
-- requests then get the 404 of `route`.
function M.check_sni()
    local name = require("ngx.ssl").server_name()
    local value = name and routes():get(name:lower())
    if type(value) ~= "string" or value:sub(-4) ~= " tls" then
        return ngx.exit(ngx.ERROR)
    end
end

-- content_by_lua of the admin location. POST: applies the batch in the body (with ?replace=1,
-- the body is the whole table and every other route goes). GET: the table, one "+" line per
-- route, after a "# capacity <bytes> free <bytes>" line.
function M.admin()
    local dict = routes()
    local method = ngx.req.get_method()
    if method == "GET" then
        local out = { "# capacity " .. dict:capacity() .. " free " .. dict:free_space() }
        for _, host in ipairs(dict:get_keys(0)) do
            local value = dict:get(host)
            if type(value) == "string" then
                out[#out + 1] = "+ " .. host .. " " .. value
            end
        end
        ngx.say(table.concat(out, "\n"))
        return
    end
    if method ~= "POST" then
        return ngx.exit(ngx.HTTP_NOT_ALLOWED)
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        local path = ngx.req.get_body_file()
        local file = path and io.open(path, "r")
        body = file and file:read("*a") or ""
        if file then
            file:close()
        end
    end
    local ops, err = parse_batch(body)
    if not ops then
        ngx.status = ngx.HTTP_BAD_REQUEST
        ngx.say(err)
        return ngx.exit(ngx.HTTP_BAD_REQUEST)
    end
    local applied
    applied, err = apply(ops)
    if not applied then
        ngx.status = 507
        ngx.say(err)
        return ngx.exit(507)
    end
    if ngx.var.arg_replace == "1" then
        keep_only(ops)
    end
    ngx.say("applied ", applied)
end

return M
