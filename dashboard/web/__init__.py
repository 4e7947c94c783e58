"""The Flask app: create_app (app.py), login, sessions, pages (views/) and everything a request needs."""
