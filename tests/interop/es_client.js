// Interop EventSource client (the `eventsource` npm package), driven by the
// pytest suite.
//
// Usage: node es_client.js URL N [TYPE...]
//
// Connects to URL, prints each event as a JSON line {"type", "data",
// "lastEventId"} and exits 0 after N events. Events of type "message" are
// always listened to; name other event types as extra arguments. Errors
// (the client reconnects after them) go to stderr as JSON lines; gives up
// with exit code 1 after 20 seconds.
'use strict';

var EventSource = require('eventsource').EventSource;

var url   = process.argv[2],
    count = parseInt(process.argv[3], 10),
    types = ['message'].concat(process.argv.slice(4));

if (!url || isNaN(count)) {
  process.stderr.write('usage: node es_client.js URL N [TYPE...]\n');
  process.exit(2);
}

var es   = new EventSource(url),
    seen = 0;

types.forEach(function(type) {
  es.addEventListener(type, function(event) {
    var line = {type: event.type, data: event.data, lastEventId: event.lastEventId};
    process.stdout.write(JSON.stringify(line) + '\n');
    seen += 1;
    if (seen >= count) {
      es.close();
      process.exit(0);
    }
  });
});

es.addEventListener('error', function(event) {
  process.stderr.write(JSON.stringify({error: String(event.message || event.type),
                                       code: event.code}) + '\n');
});

setTimeout(function() {
  process.stderr.write('es_client.js: timed out after ' + seen + ' events\n');
  process.exit(1);
}, 20000).unref();
