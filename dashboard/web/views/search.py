"""Searching inside the values of a service: text or a regular expression, bounded.

One request works within one ``WorkBudget`` (time, keys, bytes read; ``budget.py`` and
``search.py`` in the providers), checked per value, shows the values that matched with
an excerpt around the first match, and offers a "continue" link carrying the position in
the URL, so a rare match in a huge service never blocks a request and a reload shows the same step.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import login_required

from dashboard.stores import search
from dashboard.web.current import provider
from dashboard.web.htmx import is_htmx, render
from dashboard.web.views.keys import page_replace

bp = Blueprint("search", __name__)
#: matching values one page shows
HIT_LIMIT = 50
#: keys and bytes of values one request reads
KEY_BUDGET = search.VALUE_KEY_BUDGET
BYTE_BUDGET = search.VALUE_BYTE_BUDGET


@bp.get("/search")
@login_required
def values():
    prefix = request.args.get("prefix", "")
    query = request.args.get("q", "")
    regex = request.args.get("regex") == "1"
    icase = request.args.get("icase") == "1"
    cursor = request.args.get("cursor") or None
    store = provider()
    context = {"prefix": prefix, "q": query, "regex": regex, "icase": icase, "cursor": cursor,
               "capabilities": store.capabilities(), "search": None, "problem": None,
               "searched_bytes": search.VALUE_SEARCH_BYTES, "key_budget": KEY_BUDGET}
    status = 200
    if query:
        try:
            # one budget for the step: time, keys and bytes, checked per value
            work = search.value_budget(KEY_BUDGET, BYTE_BUDGET)
            found = store.search_values(
                prefix, query, regex=regex, icase=icase, cursor=cursor, limit=HIT_LIMIT,
                work=work)
        except search.BadPattern as error:
            # said beside the form; an htmx answer must be 200 to be swapped in
            context["problem"] = error.message
            status = 200 if is_htmx() else 400
        else:
            context["search"] = found
            if cursor and is_htmx():
                return render_template("keys/_search_hits.html", **context), 200, page_replace(
                    "search.values", prefix=prefix, q=query, regex="1" if regex else None,
                    icase="1" if icase else None, cursor=cursor)
    body, _, headers = render("keys/search.html", "keys/_search_results.html", **context)
    return body, status, headers
