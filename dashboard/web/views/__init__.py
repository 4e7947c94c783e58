"""One blueprint per feature; this module wires them and the helpers they share."""

from __future__ import annotations

from flask import Flask, current_app

from dashboard.web.current import provider


def register_blueprints(app: Flask) -> None:
    from dashboard.web import formatting, forms
    from dashboard.web.access import can_write
    from dashboard.web.views import edits, index, keys, mget, ops, services, store, transfer

    formatting.register(app)
    app.jinja_env.filters["b64field"] = forms.encode
    app.jinja_env.filters["key_url"] = formatting.key_url
    app.register_blueprint(ops.bp)
    app.register_blueprint(services.bp)
    app.register_blueprint(keys.bp)
    app.register_blueprint(edits.bp)
    app.register_blueprint(mget.bp)
    app.register_blueprint(index.bp)
    app.register_blueprint(store.bp)
    app.register_blueprint(transfer.bp)
    from dashboard.web.views import live as live_views

    live_views.register(app)
    from dashboard.web.views import search

    # key search lives in keys.browse (?match=); value search has its own page
    app.register_blueprint(search.bp)
    from dashboard.web.views import history

    app.register_blueprint(history.bp)
    app.jinja_env.filters.update(show_key_wrap=formatting.show_key_wrap,
                                 hit_excerpt=formatting.hit_excerpt)

    @app.context_processor
    def _globals():
        return {"can_write": can_write(), "store_name": provider().name,
                "settings": current_app.config["KV_SETTINGS"]}
