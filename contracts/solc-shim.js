#!/usr/bin/env node
// A minimal `solc` command line over the npm `solc` (wasm) package, so that
// py-solc-x can drive it: `solcjs --standard-json` prints a warning line before its
// JSON, which py-solc-x cannot parse. Supports exactly what py-solc-x calls:
//   solc-shim.js --version
//   solc-shim.js --standard-json        (input JSON on stdin, output JSON on stdout)
"use strict";

const path = require("path");

function loadSolc() {
  // Resolve from the repo's node_modules (this file lives in <repo>/contracts/).
  const candidates = [
    process.env.MEDGOSSIP_SOLC_JS,
    path.join(__dirname, "..", "node_modules", "solc"),
    "solc",
  ].filter(Boolean);
  for (const candidate of candidates) {
    try {
      return require(candidate);
    } catch (err) {
      if (err.code !== "MODULE_NOT_FOUND") throw err;
    }
  }
  process.stderr.write("solc-shim: npm package `solc` not found; run `make install`\n");
  process.exit(2);
}

function readStdin() {
  const chunks = [];
  const fs = require("fs");
  const buffer = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buffer, 0, buffer.length, null);
    } catch (err) {
      if (err.code === "EAGAIN") continue;
      if (err.code === "EOF") break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString("utf8");
}

const args = process.argv.slice(2);
const solc = loadSolc();
if (args.includes("--version")) {
  process.stdout.write(
    "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n"
  );
} else if (args.includes("--standard-json")) {
  process.stdout.write(solc.compile(readStdin()) + "\n");
} else {
  process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
  process.exit(2);
}
