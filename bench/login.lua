-- wrk script for bench/logins: POSTs a CORRECT password to the login form, with the CSRF
-- token and device cookie obtained once by the shell script (env CSRF, DEVICE, EMAIL).
-- Each success answers 303 and opens a session on that device (replacing the previous
-- one), so the device cap is not hit; bench/logins counts successes from /metrics.
local function enc(s)
    return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "vigile_device=" .. os.getenv("DEVICE")
wrk.body = "email=" .. enc(os.getenv("EMAIL")) .. "&password=" .. enc(os.getenv("PASSWORD"))
    .. "&csrf=" .. enc(os.getenv("CSRF"))
