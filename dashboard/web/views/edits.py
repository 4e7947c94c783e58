"""Changing keys: edit (diff, confirm, conflict), create, delete. Editors only.

Every write is conditional on what the operator saw (``expected_version``), so a value
another writer changed meanwhile is never overwritten: the operator sees both instead.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass, field

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from dashboard import mesh
from dashboard.mesh import audit as audit_trail
from dashboard.mesh import meshjson, writes
from dashboard.mesh.text import has_surrogates
from dashboard.stores.entries import Entry
from dashboard.stores.errors import Conflict, NotFound, WriteUnknown
from dashboard.stores.mutations import KEEP_TTL, NO_TTL, TtlChange
from dashboard.web import discovery, forms, metrics
from dashboard.web.access import editor_required
from dashboard.web.current import provider
from dashboard.web.formatting import parse_ttl
from dashboard.web.views.keys import parent_prefix

bp = Blueprint("edits", __name__)
#: one line per write: who changed which key (the roadmap's audit trail starts here)
audit = logging.getLogger("dashboard.audit")


@dataclass
class WriteForm:
    """What the operator typed, as posted back by the edit and create forms."""

    key: str = ""
    value: str = ""
    ttl_mode: str = "keep"
    ttl: str = ""
    expected_version: str = ""
    raw: bool = False
    compact: bool = True
    update_index: bool = True
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_request(cls) -> WriteForm:
        form = request.form
        return cls(
            key=forms.field("key"),
            # Browsers send CRLF from textareas; stored values use LF.
            value=form.get("value", "").replace("\r\n", "\n"),
            ttl_mode=form.get("ttl_mode", "keep"),
            ttl=form.get("ttl", "").strip(),
            expected_version=form.get("expected_version", ""),
            raw=form.get("raw") == "on",
            compact=form.get("compact") == "on",
            update_index=form.get("update_index") == "on",
        )

    def ttl_change(self, ttl_known: bool = True) -> TtlChange | None:
        """The TTL the write applies, or None with ``errors`` explaining why not."""
        if self.ttl_mode == "none":
            return NO_TTL
        if self.ttl_mode == "keep":
            if not ttl_known:
                self.errors.append(
                    "This store cannot report TTLs, so the current TTL cannot be kept. Choose "
                    "'set a TTL', or 'no expiry' if the key should never expire."
                )
                return None
            return KEEP_TTL
        if self.ttl_mode == "set":
            try:
                return TtlChange.set(parse_ttl(self.ttl))
            except ValueError as error:
                self.errors.append(str(error))
                return None
        self.errors.append("Choose what happens to the TTL: keep it, set one, or no expiry."
                           if not self.ttl_mode else f"Unknown TTL choice {self.ttl_mode!r}.")
        return None

    def value_to_store(self) -> str | None:
        """The value as it will be written: validated JSON (in the mesh's bytes if asked) or
        raw text."""
        size = len(self.value.encode("utf-8", "surrogatepass"))
        if size > _max_bytes():
            self.errors.append(_too_big(size))
            return None
        if self.raw:
            return self.value
        try:
            parsed = meshjson.loads(self.value)
        except meshjson.JsonTooDeep:
            self.errors.append(
                f"The value is nested deeper than {meshjson.MAX_DEPTH} levels; the dashboard "
                "refuses to write it (a mesh service could not read it either)."
            )
            return None
        except ValueError as error:
            where = (f" (line {error.lineno}, column {error.colno})"
                     if isinstance(error, json.JSONDecodeError) else "")
            self.errors.append(
                f"The value is not valid JSON: {getattr(error, 'msg', error)}{where}. Fix it, or "
                "tick 'save as raw string' to store the text exactly as typed."
            )
            return None
        if self.compact:
            return meshjson.dumps(parsed)
        return self.value


def value_diff(old: str | None, new: str) -> list[tuple[str, str]]:
    """Line diff of old and new (pretty-printed when both are JSON): (kind, text) pairs."""
    old_text = meshjson.pretty(old) if old is not None else None
    old_text = old_text if old_text is not None else (old or "")
    new_text = meshjson.pretty(new)
    new_text = new_text if new_text is not None else new
    lines = []
    for line in difflib.unified_diff(old_text.splitlines(), new_text.splitlines(),
                                     "current", "new", lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append((kind, line))
    return lines


def _settings():
    return current_app.config["KV_SETTINGS"]


def _service_index_state(key: str) -> tuple[mesh.Service | None, bool]:
    return writes.index_applies(provider(), _settings(), key)


def _report_index(result: writes.WriteResult) -> None:
    """Tell the operator what happened to the index after a write that happened."""
    if result.note:
        flash(result.note, "info")
    outcome = result.index
    if outcome.message:
        flash(outcome.message, "error" if outcome.status in ("failed", "unknown") else "info")


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _keep_what_was_not_touched(stored: str, form: WriteForm, value: str) -> str:
    """The value to write, keeping the stored bytes the operator did not change.

    The form showed ``stored`` pretty-printed (or raw) and the browser sent every line
    break back as CRLF. Text the operator left as shown is the stored value itself, never
    a rewrite (only an explicit "compact" turns it into the mesh's form); edited text keeps
    the stored value's line-ending style where it had a single one.
    """
    pretty = meshjson.pretty(stored)
    shown = stored if pretty is None or form.raw else pretty
    if _lf(form.value) == _lf(shown):
        if form.compact and not form.raw and pretty is not None:
            return meshjson.to_mesh_form(stored)
        return stored
    if "\n" not in value and "\r" not in value:
        return value
    if "\r\n" in stored and stored.count("\r\n") == stored.count("\n") == stored.count("\r"):
        return _lf(value).replace("\n", "\r\n")
    if "\r" in stored and "\n" not in stored:
        return _lf(value).replace("\n", "\r")
    return value


def _max_bytes() -> int:
    return _settings().dashboard.max_render_bytes


def _too_big(size: int) -> str:
    from dashboard.web.formatting import human_size

    return (f"This value is {human_size(size)}, more than the {human_size(_max_bytes())} the "
            "browser edits (Dashboard__MaxRenderBytes): a form that size would stall the page. "
            "Download it, and write it with the store's own tools.")


def _raw_under_a_service(key: str, value: str) -> bool:
    """A value that is not JSON, under a prefix whose service reads every value as JSON."""
    return mesh.service_for_key(_settings(), key) is not None and not _is_json(value)


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except (ValueError, RecursionError):
        return False
    return True


def _edit_page(entry: Entry | None, form: WriteForm, status: int = 200, *,
               index_state: tuple[mesh.Service | None, bool] | None = None, **extra):
    service, indexed = index_state or _service_index_state(form.key)
    return render_template(
        "edits/edit.html", entry=entry, form=form, service=service, indexed=indexed,
        capabilities=provider().capabilities(), prefix=parent_prefix(form.key), **extra,
    ), status


def _require_text_key(key: str) -> None:
    """A form cannot carry a non-UTF-8 key back: such keys are read-only here."""
    if has_surrogates(key):
        abort(400, description="This key is not valid UTF-8; the dashboard shows it read-only.")


@bp.get("/key/edit")
@editor_required
def edit_form():
    key = request.args.get("key", "")
    _require_text_key(key)
    # a value bigger than the form takes is not read whole (one byte more tells "bigger")
    entry = provider().get(key, max_bytes=_max_bytes() + 1)
    if not entry.editable:
        flash(f"{entry.type} values are shown read-only.", "error")
        return redirect(url_for("keys.detail", key=key))
    if entry.partial or entry.size > _max_bytes():
        # the key page says why (its edit-refused note) and offers the download instead:
        # a flash saying it again would show the sentence twice
        return redirect(url_for("keys.detail", key=key))
    pretty = meshjson.pretty(entry.value or "")
    form = WriteForm(
        key=key, value=pretty if pretty is not None else entry.value or "",
        ttl_mode="keep" if entry.ttl_known else "", expected_version=entry.token,
        raw=pretty is None,
        # ticked when the stored bytes already are what the mesh writes
        compact=pretty is not None and meshjson.is_mesh_form(entry.value),
    )
    index_state = _service_index_state(key)
    form.update_index = index_state[1]
    return _edit_page(entry, form, index_state=index_state)


@bp.post("/key/edit")
@editor_required
def edit_submit():
    form = WriteForm.from_request()
    store = provider()
    try:
        current = store.get(form.key)
    except NotFound:
        current = None
    ttl = form.ttl_change(current.ttl_known if current else True)
    value = form.value_to_store()
    if form.errors or ttl is None or value is None:
        return _edit_page(current, form, 422)
    if current is None:
        return _edit_page(None, form, 409, conflict=True)
    if current.matches(form.expected_version) and current.value is not None:
        value = _keep_what_was_not_touched(current.value, form, value)
        if value == current.value and ttl.mode == "keep":
            flash("Nothing changed: nothing was written.", "info")
            return redirect(url_for("keys.detail", key=form.key), 303)
    if request.form.get("confirm") != "yes":
        # First submit: show exactly what will change before anything is written.
        return render_template(
            "edits/confirm.html", form=form, entry=current, diff=value_diff(current.value, value),
            new_value=value, ttl=ttl, stale=not current.matches(form.expected_version),
            raw_warning=_raw_under_a_service(form.key, value),
        )
    try:
        result = writes.replace(store, _settings(), form.key, value, ttl=ttl,
                                expected=form.expected_version, update_index=form.update_index)
    except Conflict as conflict:
        metrics.count_write("edit", "conflict")
        return _edit_page(conflict.current, form, 409, conflict=True)
    except WriteUnknown as unknown:
        return _unknown_page(unknown, "edit", before=current, value=value)
    audit_trail.key_write("edit", _operator(), form.key, result=result, before=current,
                          value=value, ttl=ttl.mode)
    flash("Saved.", "success")
    _report_index(result)
    return redirect(url_for("keys.detail", key=form.key), 303)


def _unknown_page(unknown: WriteUnknown, action: str, *, before: Entry | None = None,
                  value: str | None = None):
    """A write the store did not confirm: say so, and where to look."""
    audit_trail.unconfirmed(action, _operator(), unknown.key or "", unknown.message,
                            before=before, value=value)
    service = mesh.service_for_key(_settings(), unknown.key or "")
    return render_template("edits/unknown.html", error=unknown, service=service), 504


def _operator() -> str:
    from flask_login import current_user

    return getattr(current_user, "name", "?")


@bp.route("/key/new", methods=["GET", "POST"])
@editor_required
def new():
    prefix = forms.field("prefix")
    if request.method == "GET":
        form = WriteForm(key=prefix, value="{}", ttl_mode="none")
        index_state = _service_index_state(prefix)
        form.update_index = index_state[1]
        return _new_page(form, prefix, index_state=index_state)
    form = WriteForm.from_request()
    if not form.key or form.key.endswith(mesh.SEPARATOR):
        form.errors.append("Give the key a name after its prefix.")
    ttl = form.ttl_change() if form.ttl_mode != "keep" else NO_TTL
    value = form.value_to_store()
    if form.errors or ttl is None or value is None:
        return _new_page(form, prefix, 422)
    try:
        result = writes.create(provider(), _settings(), form.key, value, ttl=ttl,
                               update_index=form.update_index)
    except Conflict:
        metrics.count_write("create", "conflict")
        form.errors.append("A key with this name already exists; nothing was written.")
        return _new_page(form, prefix, 409, exists=True)
    except WriteUnknown as unknown:
        return _unknown_page(unknown, "create", value=value)
    audit_trail.key_write("create", _operator(), form.key, result=result, value=value,
                          ttl=ttl.mode)
    discovery.forget()  # a new key may be a new service: every page shows it at once
    flash("Created.", "success")
    if _raw_under_a_service(form.key, value):
        flash("The value is not JSON: the service that owns this prefix reads every value "
              "as JSON and will fail to deserialise this key.", "error")
    _report_index(result)
    return redirect(url_for("keys.detail", key=form.key), 303)


def _new_page(form: WriteForm, prefix: str, status: int = 200, *,
              index_state: tuple[mesh.Service | None, bool] | None = None, **extra):
    service, indexed = index_state or _service_index_state(form.key or prefix)
    return render_template("edits/new.html", form=form, prefix=prefix, service=service,
                           indexed=indexed, capabilities=provider().capabilities(),
                           **extra), status


@bp.route("/key/delete", methods=["GET", "POST"])
@editor_required
def delete():
    key = forms.field("key")
    _require_text_key(key)
    back = forms.field("back_prefix") or parent_prefix(key)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        entry = provider().get(key)
        service, indexed = _service_index_state(key)
        return render_template("edits/delete.html", entry=entry, back_prefix=back,
                               service=service, indexed=indexed)
    expected = request.form.get("expected_version") or None
    before = audit_trail.peek(provider(), key)  # for the audit trail: version and size deleted
    try:
        result = writes.delete(provider(), _settings(), key, expected=expected,
                               update_index=request.form.get("update_index") == "on")
    except Conflict as conflict:
        metrics.count_write("delete", "conflict")
        service, indexed = _service_index_state(key)
        return render_template("edits/delete.html", entry=conflict.current, back_prefix=back,
                               service=service, indexed=indexed, conflict=True), 409
    except WriteUnknown as unknown:
        return _unknown_page(unknown, "delete", before=before)
    audit_trail.key_write("delete", _operator(), key, result=result, before=before,
                          expected=expected)
    discovery.forget()
    flash(f"Deleted {key!r}." if result.existed else f"{key!r} was already gone.", "success")
    _report_index(result)
    return redirect(url_for("keys.browse", prefix=back), 303)
