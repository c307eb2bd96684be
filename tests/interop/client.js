// Interop client driven by the pytest suite.
//
// Usage: node client.js URL
//
// Connects with faye-websocket (subprotocols irc/xmpp, permessage-deflate),
// reports events on stdout as one JSON object per line, and executes JSON
// commands read line by line from stdin, strictly in order:
//   {"send": "text"}              send a text message
//   {"send_binary_hex": "00ff"}   send a binary message
//   {"ping": "payload"}           send a ping; report {"event":"pong"} on reply
//   {"close": [code, reason]}     close the connection
// Commands received before the connection opens are queued until 'open'.
// The process exits 0 after the 'close' event and 3 after a 20 s timeout.
'use strict';

var readline  = require('readline'),
    WebSocket = require('faye-websocket'),
    deflate   = require('permessage-deflate');

var url = process.argv[2];
if (!url) {
  process.stderr.write('usage: node client.js URL\n');
  process.exit(2);
}

function emit(obj, callback) {
  process.stdout.write(JSON.stringify(obj) + '\n', callback);
}

// Exit only once everything written so far has reached stdout.
function finish(obj, code) {
  emit(obj, function() { process.exit(code); });
}

setTimeout(function() { finish({event: 'timeout'}, 3); }, 20000);

var ws     = new WebSocket.Client(url, ['irc', 'xmpp'], {extensions: [deflate]}),
    opened = false,
    closed = false,
    queue  = [];

function run(line) {
  if (closed) return;
  var cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return emit({event: 'error', message: 'bad command line: ' + line});
  }
  if (cmd === null || typeof cmd !== 'object') {
    emit({event: 'error', message: 'unknown command: ' + line});
  } else if ('send' in cmd) {
    ws.send(String(cmd.send));
  } else if ('send_binary_hex' in cmd) {
    ws.send(Buffer.from(cmd.send_binary_hex, 'hex'));
  } else if ('ping' in cmd) {
    var payload = String(cmd.ping);
    ws.ping(payload, function() { emit({event: 'pong', data: payload}); });
  } else if ('close' in cmd) {
    var args = cmd.close || [];
    ws.close(args[0], args[1]);
  } else {
    emit({event: 'error', message: 'unknown command: ' + line});
  }
}

ws.on('open', function() {
  opened = true;
  emit({
    event:      'open',
    protocol:   ws.protocol,
    extensions: (ws.headers && ws.headers['sec-websocket-extensions']) || ''
  });
  queue.splice(0).forEach(run);
});

ws.on('message', function(event) {
  if (typeof event.data === 'string') {
    emit({event: 'message', type: 'text', data: event.data});
  } else {
    emit({event: 'message', type: 'binary', data: Buffer.from(event.data).toString('hex')});
  }
});

ws.on('error', function(event) {
  emit({event: 'error', message: event.message});
});

ws.on('close', function(event) {
  closed = true;
  finish({event: 'close', code: event.code, reason: event.reason}, 0);
});

readline.createInterface({input: process.stdin}).on('line', function(line) {
  if (!line.trim()) return;
  if (opened) run(line);
  else queue.push(line);
});
// When stdin ends nothing happens: we keep waiting for 'close' (or the timeout).
