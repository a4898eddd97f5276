-- wrk script for bench/login_storm: POSTs a wrong password to the login form, with the
-- CSRF token and device cookie obtained once by the shell script (env CSRF, DEVICE).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "vigile_device=" .. os.getenv("DEVICE")
wrk.body = "email=storm%40example.com&password=Wrong-password-1&csrf=" .. os.getenv("CSRF")
