// Interop EventSource server (faye-websocket 0.11.4's WebSocket.EventSource),
// driven by the pytest suite.
//
// Usage: node es_server.js PORT
//
// Every GET with `Accept: text/event-stream` gets a stream (retry 50 ms) of
// three events numbered on from its Last-Event-ID (N+1, N+2, N+3, each with
// id N+k; the second one of type "update" with two lines of data), after
// which the server closes the stream, so the client reconnects. Each stream
// is logged as a JSON line {"open": URL, "lastEventId": ID}. Prints
// "listening PORT" once ready (the real port, so PORT may be 0) and exits on
// SIGTERM or SIGINT.
'use strict';

var http        = require('http'),
    EventSource = require('faye-websocket').EventSource;

var port = parseInt(process.argv[2], 10);
if (isNaN(port)) {
  process.stderr.write('usage: node es_server.js PORT\n');
  process.exit(2);
}

var server = http.createServer(function(request, response) {
  if (!EventSource.isEventSource(request)) {
    response.writeHead(404, {'Content-Type': 'text/plain'});
    return response.end('EventSource endpoint\n');
  }
  var es    = new EventSource(request, response, {retry: 0.05, ping: 15}),
      start = parseInt(es.lastEventId || '0', 10) || 0;

  process.stdout.write(JSON.stringify({open: es.url, lastEventId: es.lastEventId}) + '\n');

  es.send('event ' + (start + 1), {id: String(start + 1)});
  es.send('line one of ' + (start + 2) + '\nline two', {event: 'update', id: String(start + 2)});
  es.send('event ' + (start + 3) + ' \u2713', {id: String(start + 3)});
  setTimeout(function() { es.close(); }, 10);
});

server.listen(port, '127.0.0.1', function() {
  process.stdout.write('listening ' + server.address().port + '\n');
});

function stop() { process.exit(0); }
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
