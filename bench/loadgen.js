// Varying-body gRPC load generator for bench/run.py (h2load sends one body
// for every request). Node's built-in http2 (nghttp2 underneath), one event
// loop, C connections x M concurrent streams, h2c prior knowledge.
//
// node bench/loadgen.js SPEC.json  ->  one JSON line of results on stdout
//
// SPEC: {"target": "127.0.0.1:PORT", "connections": C, "streams": M,
//        "duration": seconds, "max_requests": N,
//        "paths": ["/pkg.Svc/Method", ...],
//        "bodies_file": "file of length-prefixed gRPC frames"}
// Request i uses bodies[i % nbodies] and paths[i % npaths]; the run stops at
// `duration` seconds or after max_requests requests (0 = no limit), whichever
// comes first. With "slots": true, stream slot s always sends bodies[s]
// and cycles through paths in order (Follow, Unfollow, Follow, ...). Latency is measured per request from before the request is
// written to the end of its trailers.
'use strict';
const fs = require('fs');
const http2 = require('http2');

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const raw = fs.readFileSync(spec.bodies_file);
const bodies = [];
for (let off = 0; off < raw.length;) {
  const len = raw.readUInt32BE(off + 1);
  bodies.push(raw.subarray(off, off + 5 + len));
  off += 5 + len;
}
const paths = spec.paths;
const maxRequests = spec.max_requests || Infinity;
const lat = [];
const statuses = {};
let next = 0;
let done = 0;
let failed = 0;
let inflight = 0;
let stopping = false;
let t0 = process.hrtime.bigint();
let deadline = t0;
const sessions = [];
const slotCount = [];

function finish() {
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
  process.stdout.write(JSON.stringify({
    requests: done, failed, seconds: secs, rps: done / secs,
    p50_us: q(0.5), p99_us: q(0.99), max_us: lat.length ? lat[lat.length - 1] : null,
    grpc_status: statuses,
  }) + '\n');
  for (const s of sessions) s.close();
  setTimeout(() => process.exit(0), 100).unref();
}

function issue(session, slot) {
  if (stopping) return;
  if (next >= maxRequests || process.hrtime.bigint() >= deadline) {
    stopping = true;
    if (inflight === 0) finish();
    return;
  }
  const i = next++;
  inflight++;
  let path, body;
  if (spec.slots) {
    path = paths[slotCount[slot]++ % paths.length];
    body = bodies[slot % bodies.length];
  } else {
    path = paths[i % paths.length];
    body = bodies[i % bodies.length];
  }
  const start = process.hrtime.bigint();
  const req = session.request({
    ':method': 'POST', ':path': path,
    'content-type': 'application/grpc', te: 'trailers',
  });
  let status = null;
  req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = h['grpc-status']; });
  req.on('trailers', (h) => { status = h['grpc-status']; });
  req.on('data', () => {});
  req.on('error', () => { status = 'error'; });
  req.on('close', () => {
    inflight--;
    done++;
    lat.push(Number(process.hrtime.bigint() - start) / 1000);
    statuses[status] = (statuses[status] || 0) + 1;
    if (status !== '0') failed++;
    if (stopping) { if (inflight === 0) finish(); return; }
    issue(session, slot);
  });
  req.end(body);
}

let ready = 0;
for (let c = 0; c < spec.connections; c++) {
  const s = http2.connect('http://' + spec.target, { settings: { initialWindowSize: 1 << 24 } });
  s.on('error', (e) => { process.stderr.write('loadgen: ' + e.message + '\n'); process.exit(2); });
  s.on('connect', () => {
    if (++ready === spec.connections) {
      t0 = process.hrtime.bigint();
      deadline = t0 + BigInt(Math.round(spec.duration * 1e9));
      let slot = 0;
      for (const ss of sessions) for (let m = 0; m < spec.streams; m++) { slotCount.push(0); issue(ss, slot++); }
    }
  });
  sessions.push(s);
}
