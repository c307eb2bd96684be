"""The Autobahn testee is a script, not a test module."""

collect_ignore = ["client.py"]
