// A Node application behind Vigile: plain `node:http`, no packages.
//
// Vigile signs members in and tells the application who is asking in request headers
// (names configurable in [headers]; these are the defaults):
//   Remote-User    the member: a stable id by default, the email address with
//                  [headers] user_value = "email"
//   Remote-Email   the member's email address
//   Remote-Name    the member's display name
//   Remote-Groups  comma-separated roles: member, admin, org-admin, org-super-admin
// On a public path an anonymous visitor arrives without any of them. Vigile removes
// whatever a client sent under these names, so they can be trusted - provided the
// application is reachable through Vigile alone (it listens on 127.0.0.1 here).
//
// Run:  PORT=3000 node server.js     then, in vigile.toml:  [upstream] url = "http://127.0.0.1:3000"
// PORT=0 picks a free port; the line printed at start says which.
"use strict";

const http = require("node:http");

/** The member Vigile vouches for, or null for an anonymous visitor. */
function member(req) {
  const id = req.headers["remote-user"];
  if (!id) {
    return null;
  }
  const groups = (req.headers["remote-groups"] || "")
    .split(",")
    .map((g) => g.trim())
    .filter((g) => g !== "");
  return {
    user: id,
    email: req.headers["remote-email"] || null,
    name: req.headers["remote-name"] || null,
    groups,
    admin: groups.includes("admin"),
  };
}

const server = http.createServer((req, res) => {
  const body = JSON.stringify({ path: req.url, member: member(req) });
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
});

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 3000);
server.listen(port, host, () => {
  const address = server.address();
  console.log(`listening on http://${address.address}:${address.port}`);
});
