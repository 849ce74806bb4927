"""The agent: collect a snapshot with psutil, send it, spool it when the server is away."""
