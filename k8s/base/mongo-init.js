// Run by the Job mongo-init (mongosh --nodb): signs in as the admin user (Secret mongo-admin,
// created on mongo-0's first start), initiates the replica set rs0 once, then creates or
// updates one user per service with readWrite on that service's database only. Idempotent:
// rerunning it changes nothing but passwords that were changed in their Secrets.
const fs = require("fs");
const read = (path) => fs.readFileSync(path, "utf8").trim();
const TLS = "tls=true&tlsCAFile=/etc/mongo-tls/ca.crt";
const MEMBERS = ["mongo-0.mongo:27017", "mongo-1.mongo:27017", "mongo-2.mongo:27017"];
const SERVICES = ["users", "catalog", "orders", "delivery"];
const adminUser = read("/etc/mongo-admin/username");
const adminPassword = read("/etc/mongo-admin/password");

function signIn(uri) {
  for (let attempt = 0; attempt < 90; attempt++) {
    try {
      const connection = new Mongo(uri);
      connection.getDB("admin").auth(adminUser, adminPassword);
      return connection;
    } catch (e) {
      print(`waiting to sign in at ${uri}: ${e.message}`);
      sleep(5000);
    }
  }
  throw new Error(`could not sign in as ${adminUser} at ${uri}`);
}

function replicaSetStatus(connection) {
  try {
    return connection.getDB("admin").runCommand({ replSetGetStatus: 1 });
  } catch (e) {
    return { ok: 0, codeName: e.codeName, errmsg: e.message };
  }
}

// 1. The replica set, from mongo-0 (which holds the admin user).
const first = signIn(`mongodb://${MEMBERS[0]}/?directConnection=true&${TLS}`);
const status = replicaSetStatus(first);
if (status.ok === 1) {
  print("replica set rs0 already initiated");
} else if (status.codeName === "NotYetInitialized") {
  const config = { _id: "rs0", members: MEMBERS.map((host, i) => ({ _id: i, host })) };
  const result = first.getDB("admin").runCommand({ replSetInitiate: config });
  if (result.ok !== 1) throw new Error(`replSetInitiate: ${JSON.stringify(result)}`);
  print("replica set rs0 initiated");
} else {
  throw new Error(`replSetGetStatus: ${JSON.stringify(status)}`);
}

// 2. One user per service, through the set (so on its primary).
const set = signIn(`mongodb://${MEMBERS.join(",")}/?replicaSet=rs0&${TLS}`);
const admin = set.getDB("admin");
for (const service of SERVICES) {
  const user = `winkit_${service}`;
  const spec = {
    pwd: read(`/etc/winkit-mongo/${service}/password`),
    roles: [{ role: "readWrite", db: `winkit_${service}` }],
  };
  if (admin.getUser(user)) {
    admin.updateUser(user, spec);
    print(`user ${user} updated`);
  } else {
    admin.createUser({ user, ...spec });
    print(`user ${user} created`);
  }
}
print(`primary: ${admin.hello().primary}`);
