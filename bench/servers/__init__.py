"""One script per server under test, each run as ``python -m bench.servers.NAME``.

Every server listens on 127.0.0.1 (a free port), prints ``PORT <n>`` once it
accepts connections, and exits when its standard input closes (so it cannot
outlive the runner). Endpoints, where the library has them:

* ``/``: WebSocket echo (messages up to 2 MiB);
* ``/broadcast``: WebSocket; a message from any client goes to every client
  connected to ``/broadcast``;
* ``/events?n=N``: an EventSource stream of ``N`` events sent back to back,
  then the end of the stream.
"""
