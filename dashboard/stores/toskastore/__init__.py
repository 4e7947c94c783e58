"""ToskaStore (0.8, v0.9.1, main) behind the provider contract, over HTTP/JSON."""
