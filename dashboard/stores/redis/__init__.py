"""Redis and Redis Cluster behind the provider contract."""
