// permessage-deflate negotiation matrix, driven by tests/test_deflate_negotiation.py.
//
// Reads one JSON object on stdin: {"url": ..., "configs": [...], "messages": [...]}
// where each config is passed to permessage-deflate's configure() and each
// message is {"text": "..."} or {"hex": "00ff..."}. For every config in turn it
// connects, sends every message, checks the echoes in order, and prints one
// JSON line: {"ok": bool, "extensions": header, "error": ...}. Exits 0 when
// every line was printed, 3 after a 60 s timeout.
'use strict';

var WebSocket = require('faye-websocket'),
    deflate   = require('permessage-deflate');

setTimeout(function() { process.exit(3); }, 60000);

var input = '';
process.stdin.on('data', function(chunk) { input += chunk; });
process.stdin.on('end', function() {
  var spec = JSON.parse(input);
  var messages = spec.messages.map(function(m) {
    return 'text' in m ? m.text : Buffer.from(m.hex, 'hex');
  });
  run(spec, messages, 0);
});

function same(a, b) {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return Buffer.isBuffer(a) && Buffer.compare(a, b) === 0;
}

function run(spec, messages, index) {
  if (index === spec.configs.length) return process.exit(0);
  var ws = new WebSocket.Client(spec.url, [], {extensions: [deflate.configure(spec.configs[index])]}),
      received = [], report = {ok: false, extensions: null}, done = false;

  function finish(error) {
    if (done) return;
    done = true;
    if (error) report.error = error;
    process.stdout.write(JSON.stringify(report) + '\n', function() { run(spec, messages, index + 1); });
  }
  ws.on('open', function() {
    report.extensions = ws.headers['sec-websocket-extensions'] || null;
    messages.forEach(function(m) { ws.send(m); });
  });
  ws.on('message', function(event) {
    received.push(event.data);
    if (received.length < messages.length) return;
    report.ok = messages.every(function(m, i) { return same(m, received[i]); });
    ws.close();
  });
  ws.on('close', function(event) {
    if (!report.ok) return finish('closed ' + event.code + ' ' + event.reason);
    finish();
  });
}
