// Run by the init container bootstrap-admin of mongo-0, once, against a temporary mongod on
// 127.0.0.1 without authentication (before the replica set exists): creates the admin user
// from Secret mongo-admin. mongo-init-job.yaml then signs in as it.
const fs = require("fs");
const read = (path) => fs.readFileSync(path, "utf8").trim();
const username = read("/etc/mongo-admin/username");
const admin = db.getSiblingDB("admin");
if (admin.getUser(username)) {
  print(`admin user ${username} exists`);
} else {
  admin.createUser({ user: username, pwd: read("/etc/mongo-admin/password"), roles: ["root"] });
  print(`admin user ${username} created`);
}
