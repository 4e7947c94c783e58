"""The dashboard's benchmark (``python bench/run.py``); see bench/README.md.

One module per concern:

- ``data``: the deterministic data set (mesh-shaped services, one big service, a 50 MB value);
- ``targets``: the stores it runs on (a dev store process, a real redis-server; the Redis
  Cluster hook), started on 127.0.0.1 and seeded;
- ``meter``: store round trips counted (and recorded) on the provider's own client;
- ``floor``: the recorded store calls made again directly with httpx / redis-py;
- ``scenarios``: the measured pages, through the real app served on a loopback socket;
- ``indexcheck``: an index check in a child process (time, peak RSS);
- ``load``: gunicorn started as the Dockerfile's CMD starts it, and 50 clients (``loadgen``);
- ``report``: medians with min–max, the JSON and the markdown table.
"""
