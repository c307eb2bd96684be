"""The sans-IO core: bytes in, events out.

Nothing under this package performs I/O, starts a task or imports anyio; a
test imports it in a fresh interpreter and checks that ``anyio`` stays out of
``sys.modules``.
"""
