// permessage-deflate echo server for the negotiation matrix, driven by
// tests/test_deflate_negotiation.py (our client against the Node reference).
//
// Usage: node deflate_server.js 'CONFIG'
//
// CONFIG is a JSON object passed as it is to permessage-deflate's configure()
// ({} for the defaults; maxWindowBits, noContextTakeover, requestMaxWindowBits,
// requestNoContextTakeover...). Serves on a free port of 127.0.0.1, prints
// "listening PORT" once ready, and echoes every message back unchanged: text
// as text, binary as binary, empty ones included. The response's
// Sec-WebSocket-Extensions is whatever permessage-deflate answered to the
// offer; X-Offer repeats the request's Sec-WebSocket-Extensions, so the test
// sees the offer as it arrived here. Exits on SIGTERM or SIGINT, or after
// 120 s in case nobody kills it.
'use strict';

var http      = require('http'),
    WebSocket = require('faye-websocket'),
    deflate   = require('permessage-deflate');

var config;
try {
  config = JSON.parse(process.argv[2]);
} catch (error) {
  process.stderr.write('usage: node deflate_server.js CONFIG_JSON\n');
  process.exit(2);
}
var extension = deflate.configure(config);

var server = http.createServer(function(request, response) {
  response.writeHead(426, {'Content-Type': 'text/plain'});
  response.end('WebSocket endpoint\n');
});

server.on('upgrade', function(request, socket, body) {
  if (!WebSocket.isWebSocket(request)) return socket.destroy();

  var offer = request.headers['sec-websocket-extensions'] || '',
      ws    = new WebSocket(request, socket, body, [],
                            {extensions: [extension], headers: {'X-Offer': offer}});

  ws.on('message', function(event) { ws.send(event.data); });
  // Without a listener an 'error' event would throw and kill the server,
  // e.g. when a client refuses the answer and drops the connection.
  ws.on('error', function(event) { process.stderr.write('error: ' + event.message + '\n'); });
  ws.on('close', function() { ws = null; });
});

server.listen(0, '127.0.0.1', function() {
  process.stdout.write('listening ' + server.address().port + '\n');
});

function stop() { process.exit(0); }
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, 120000).unref();
