// Interop echo server driven by the pytest suite.
//
// Usage: node server.js PORT
//
// Accepts WebSocket connections (subprotocols irc/xmpp, permessage-deflate)
// and echoes every message back unchanged: text as text, binary as binary.
// The text message "please close with 4001" makes it close with 4001 instead.
// Prints "listening PORT" once ready (the real port, so PORT may be 0) and
// exits on SIGTERM or SIGINT.
'use strict';

var http      = require('http'),
    WebSocket = require('faye-websocket'),
    deflate   = require('permessage-deflate');

var port = parseInt(process.argv[2], 10);
if (isNaN(port)) {
  process.stderr.write('usage: node server.js PORT\n');
  process.exit(2);
}

var server = http.createServer(function(request, response) {
  response.writeHead(426, {'Content-Type': 'text/plain'});
  response.end('WebSocket endpoint\n');
});

server.on('upgrade', function(request, socket, body) {
  if (!WebSocket.isWebSocket(request)) return socket.destroy();

  var ws = new WebSocket(request, socket, body, ['irc', 'xmpp'], {extensions: [deflate]});

  ws.on('message', function(event) {
    if (event.data === 'please close with 4001') ws.close(4001, 'server says bye');
    else ws.send(event.data);
  });
  ws.on('close', function() { ws = null; });
});

server.listen(port, '127.0.0.1', function() {
  process.stdout.write('listening ' + server.address().port + '\n');
});

function stop() { process.exit(0); }
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
