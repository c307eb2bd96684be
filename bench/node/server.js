// Node faye-websocket 0.11.4 (the reference) as a benchmark peer; see
// bench/servers/__init__.py for the endpoints. Prints "PORT <n>" once
// listening and exits when its standard input closes.
'use strict';

const http = require('http');
const WebSocket = require('faye-websocket');
const EventSource = WebSocket.EventSource;

const MAX_LENGTH = 4 * 1024 * 1024;
const EVENT_DATA = '0123456789abcdef0123456789abcdef';
const clients = new Set();

function sendEvents(es, n) {
  // Back to back, waiting for 'drain' whenever the socket buffer is full,
  // as an application that respects backpressure would.
  let sent = 0;
  const pump = () => {
    while (sent < n) {
      sent += 1;
      if (!es.send(EVENT_DATA)) {
        if (sent < n) {
          es.once('drain', pump);
          return;
        }
      }
    }
    es.close();
  };
  pump();
}

const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://localhost');
  if (url.pathname === '/events' && EventSource.isEventSource(request)) {
    const es = new EventSource(request, response, {ping: 3600});
    sendEvents(es, parseInt(url.searchParams.get('n') || '0', 10));
    return;
  }
  response.writeHead(404, {'Content-Type': 'text/plain'});
  response.end('Not found\n');
});

server.on('upgrade', (request, socket, body) => {
  if (!WebSocket.isWebSocket(request)) return socket.destroy();
  const ws = new WebSocket(request, socket, body, [], {maxLength: MAX_LENGTH});
  if (request.url.split('?')[0] === '/broadcast') {
    clients.add(ws);
    ws.on('message', (event) => {
      for (const client of clients) client.send(event.data);
    });
    ws.on('close', () => clients.delete(ws));
  } else {
    ws.on('message', (event) => ws.send(event.data));
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
