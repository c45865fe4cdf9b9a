// Decode Sparkplug B payloads with Eclipse Tahu's sparkplug-payload (an independent decoder).
// stdin: one base64 payload per line; stdout: one JSON object per line, Long values as numbers
// (or strings beyond 2^53), so the Python tests compare plain values.
"use strict";
const readline = require("readline");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

function plain(value) {
  if (value === null || value === undefined) return value;
  if (typeof value === "object" && "low" in value && "high" in value && "unsigned" in value) {
    const Long = value.constructor;
    const big = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    const signed = !value.unsigned && value.high < 0 ? big - (1n << 64n) : big;
    const n = Number(signed);
    return Number.isSafeInteger(n) ? n : signed.toString();
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  line = line.trim();
  if (!line) return;
  try {
    const payload = sparkplug.decodePayload(Buffer.from(line, "base64"));
    process.stdout.write(JSON.stringify(plain(payload)) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err) }) + "\n");
  }
});
