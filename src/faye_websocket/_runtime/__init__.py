"""The anyio runtime: tasks, timers and streams around the sans-IO core."""
