// The peer `bench.ingest` measures stripe-ledger against: @supabase/stripe-sync-engine behind
// node:http, as its README deploys it. Run by bench/ingest.py with the package installed
// outside the repository (PEER_MODULES: a node_modules folder under ~/.cache), never vendored.
//
//   PEER_MODULES=DIR PEER_DATABASE_URL=postgresql://... STRIPE_WEBHOOK_SECRET=whsec_... \
//     PORT=P node bench/peer_sync_engine.cjs
//
// CommonJS on purpose: the package's ESM build cannot run its own migrations (`__dirname`
// is undefined there). Related entities are not backfilled and lists not expanded, so a
// charge.succeeded is verified and upserted without calling Stripe; every outbound HTTP(S)
// request is refused and counted, and the count printed at exit, to show none was made.
"use strict";

const http = require("node:http");
const https = require("node:https");
const path = require("node:path");

const modules = process.env.PEER_MODULES;
const { StripeSync, runMigrations } = require(
  path.join(modules, "@supabase", "stripe-sync-engine"),
);

let outbound = 0;
for (const library of [http, https]) {
  for (const name of ["request", "get"]) {
    library[name] = () => {
      outbound += 1;
      throw new Error("bench: no outbound request is allowed");
    };
  }
}

function answer(response, status, document) {
  const body = JSON.stringify(document);
  response.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
  });
  response.end(body);
}

async function main() {
  const databaseUrl = process.env.PEER_DATABASE_URL;
  let failed = null;
  const logger = { info() {}, warn() {}, debug() {}, error: (error) => { failed = error; } };
  await runMigrations({ databaseUrl, schema: "stripe", logger }); // it logs errors, not throws
  if (failed !== null) throw failed;
  const sync = new StripeSync({
    databaseUrl,
    stripeSecretKey: "sk_test_bench_never_used",
    stripeWebhookSecret: process.env.STRIPE_WEBHOOK_SECRET,
    backfillRelatedEntities: false,
    poolConfig: { max: 16 },
  });
  const server = http.createServer((request, response) => {
    if (request.method === "GET" && request.url === "/healthz") {
      answer(response, 200, { status: "ok" });
      return;
    }
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      sync
        .processWebhook(Buffer.concat(chunks), request.headers["stripe-signature"])
        .then(() => answer(response, 200, { received: true }))
        .catch((error) => {
          const bad = error && error.type === "StripeSignatureVerificationError";
          answer(response, bad ? 400 : 500, { error: String(error && error.message) });
        });
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(process.env.PORT), "127.0.0.1");
  const stop = () => {
    console.log(JSON.stringify({ outbound_requests: outbound }));
    server.close();
    sync.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
