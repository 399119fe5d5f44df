// Prints npm hashring@3.2.0 placements, with the ring built as statsd 0.9.0's proxy.js builds it:
// an object {"host:port": 100, ...} in member order, algorithm 'md5', options
// {'max cache size': 10000, replicas: 0}.
//
// argv[2]: JSON array of "host:port" members (member order); argv[3]: replication (distinct servers).
// stdin: JSON array of keys (strings, or null for keys to skip).
// stdout: one line per key: "<32-bit position>\t<comma-separated servers>" or "-".
'use strict';
const HashRing = require('hashring');

const members = JSON.parse(process.argv[2]);
const rep = parseInt(process.argv[3], 10);
const nodeRing = {};
for (const m of members) nodeRing[m] = 100;
const ring = new HashRing(nodeRing, 'md5', { 'max cache size': 10000, replicas: 0 });

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const keys = JSON.parse(input);
  const out = [];
  for (const key of keys) {
    if (key === null) { out.push('-'); continue; }
    const first = ring.get(key);
    const range = ring.range(key, rep, true);
    if (range[0] !== first) throw new Error('range/get disagree for ' + key);
    out.push(ring.hashValue(key) + '\t' + range.join(','));
  }
  process.stdout.write(out.join('\n') + '\n');
});
