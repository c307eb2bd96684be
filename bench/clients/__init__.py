"""Client-side scenarios: one script per client library, run against the
fixed echo server (:mod:`bench.servers.bare_echo`); each prints one JSON object."""
