"""The expert's dashboard (earnings, calls, unsettled payments, CSV, PayPal settings) and the
receipt every call gets, reachable by a signed link."""
import csv
import io

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from ..money import earnings
from ..money.ledger import rows_of_call
from .widget_api import RECEIPT_MAX_AGE
from ..extensions import db
from ..models import Call, LedgerEntry, Payment, utcnow
from ..money.payments import unsettled
from ..money.paypal import MODES, PayPalError, decrypt_secret, set_paypal_credentials
from ..calls.tokens import TokenError, tokens_for
from ..security import check_csrf, content_security_policy, csrf_token, current_expert
from ..urls import own_origin

bp = Blueprint("dashboard", __name__)

CHART_DAYS = 30


@bp.context_processor
def _helpers():
    return {"money": earnings.format_money, "period_labels": earnings.PERIOD_LABELS}


def _page(template, status=200, **context):
    """Render one of this blueprint's pages with the pages' CSP, never cached."""
    response = current_app.make_response((render_template(template, **context), status))
    response.headers["Content-Security-Policy"] = content_security_policy(["'none'"])
    response.headers["Cache-Control"] = "no-store"
    # Receipt links carry their token in the URL: never hand it on to another site.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def now_utc():
    """Now, naive UTC, from the clock that stamps the ledger's rows (tests pin it here)."""
    return utcnow()


def tokens():
    return tokens_for(current_app.config)


def _ledger_by_call(expert_id, call_ids):
    """The ledger rows of these calls, {call_id: [rows]} (a payment's rows count for its call)."""
    if not call_ids:
        return {}
    rows = db.session.execute(
        sa.select(LedgerEntry, Payment.call_id)
        .outerjoin(Payment, Payment.id == LedgerEntry.payment_id)
        .where(LedgerEntry.expert_id == expert_id,
               sa.or_(LedgerEntry.call_id.in_(call_ids), Payment.call_id.in_(call_ids)))
        .order_by(LedgerEntry.id)).all()
    grouped = {}
    for entry, paid_call in rows:
        grouped.setdefault(entry.call_id or paid_call, []).append(entry)
    return grouped


def _payment_states(expert_id, call_ids):
    if not call_ids:
        return {}
    return dict(db.session.execute(sa.select(Payment.call_id, Payment.state).where(
        Payment.expert_id == expert_id, Payment.call_id.in_(call_ids))).all())


def _call_rows(expert_id, calls):
    ids = [call.id for call in calls]
    ledger = _ledger_by_call(expert_id, ids)
    states = _payment_states(expert_id, ids)
    return [earnings.call_row(call, ledger.get(call.id, []), states.get(call.id)) for call in calls]


def _unsettled(expert):
    """What the expert is owed but has not got: unsettled PayPal payments, and ended paid calls
    with no payment and no money taken (rows from before payments existed, or made around the API)."""
    items = []
    seen = set()
    for payment in unsettled(expert.id):
        call = payment.call
        seen.add(payment.call_id)
        items.append({
            "call_id": payment.call_id, "when": earnings.human_utc(earnings.from_ms(
                earnings.started_ms(call))) if call else earnings.human_utc(payment.created_at),
            "amount": earnings.format_money(payment.due_minor or 0, payment.currency),
            "state": payment.state.replace("_", " "), "attempts": payment.attempts,
            "error": payment.last_error or "",
            "next_attempt": earnings.human_utc(earnings.from_ms(payment.next_attempt_ms))
            if payment.next_attempt_ms else "",
        })
    taken = sa.select(LedgerEntry.id).where(LedgerEntry.call_id == Call.id,
                                            LedgerEntry.kind.in_(earnings.TAKEN_KINDS)).exists()
    paid = sa.select(Payment.id).where(Payment.call_id == Call.id).exists()
    for call in db.session.scalars(sa.select(Call).where(
            Call.expert_id == expert.id, Call.state == "ended", Call.amount_minor > 0, ~taken, ~paid)
            .order_by(Call.created_ms)).all():
        if call.id in seen:
            continue
        items.append({
            "call_id": call.id, "when": earnings.human_utc(earnings.from_ms(earnings.started_ms(call))),
            "amount": earnings.format_money(call.amount_minor, call.currency), "state": "no payment",
            "attempts": 0, "error": "No PayPal hold was recorded for this call; nothing can be captured.",
            "next_attempt": "",
        })
    return items


def _earning_rows(expert_id):
    return db.session.execute(sa.select(LedgerEntry.kind, LedgerEntry.amount_minor, LedgerEntry.currency,
                                        LedgerEntry.created_at).where(
        LedgerEntry.expert_id == expert_id, LedgerEntry.kind.in_(earnings.EARNING_KINDS))).all()


@bp.get("/dashboard")
def dashboard():
    """Earnings, the chart, the calls (paginated), unsettled payments."""
    expert = current_expert()
    if expert is None:
        return redirect(url_for("account.login"))
    now = now_utc()
    rows = _earning_rows(expert.id)
    totals = earnings.totals(rows, now)
    currencies = list(totals) or [expert.currency]
    charts = [(currency, earnings.chart(earnings.daily_series(rows, now, currency, CHART_DAYS), currency))
              for currency in currencies]

    base = sa.select(Call).where(Call.expert_id == expert.id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(base.subquery()))
    page = earnings.page_of(total, request.args.get("page", 1))
    calls = db.session.scalars(base.order_by(Call.created_ms.desc(), Call.id.desc())
                               .offset(page.offset).limit(page.per_page)).all()
    issuer = tokens()
    table = [dict(row, receipt=url_for("dashboard.receipt_page", call_id=row["call_id"],
                                       t=issuer.receipt_token(row["call_id"])))
             for row in _call_rows(expert.id, calls)]
    return _page("dashboard.html", expert=expert, csrf=csrf_token(), totals=totals, currencies=currencies,
                 periods=[name for name, _ in earnings.PERIODS], charts=charts, calls=table, page=page,
                 unsettled=_unsettled(expert), now=earnings.human_utc(now))


@bp.get("/dashboard/calls.csv")
def calls_csv():
    """All the expert's calls, oldest first, as CSV."""
    expert = current_expert()
    if expert is None:
        return redirect(url_for("account.login"))
    calls = db.session.scalars(sa.select(Call).where(Call.expert_id == expert.id)
                               .order_by(Call.created_ms, Call.id)).all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(earnings.CSV_COLUMNS)
    for row in _call_rows(expert.id, calls):
        writer.writerow(earnings.csv_row(row))
    response = current_app.response_class(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="callme-{expert.handle}-calls.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


# ---- receipts ------------------------------------------------------------------------------

def _receipt(call_id):
    """(receipt data, None) or (None, (status, code, message))."""
    try:
        tokens().check_receipt_token(request.args.get("t", ""), call_id, RECEIPT_MAX_AGE)
    except TokenError as e:
        message = {"token_expired": "This receipt link has expired.",
                   "token_wrong_call": "This receipt link is for another call."}.get(
            e.code, "This receipt link is not valid.")
        return None, (403, e.code, message)
    call = db.session.get(Call, call_id)
    if call is None:
        return None, (404, "call_not_found", "This call does not exist.")
    rows = rows_of_call(call.id)
    payment = db.session.scalar(sa.select(Payment).where(Payment.call_id == call.id))
    return earnings.receipt(call, call.expert.display_name, rows,
                            capture_id=payment.capture_id if payment is not None else None), None


@bp.get("/receipts/<call_id>")
def receipt_page(call_id):
    """A call's receipt, for the visitor and the expert (signed link)."""
    data, error = _receipt(call_id)
    if error:
        status, code, message = error
        return _page("receipt.html", status=status, receipt=None, error=message)
    return _page("receipt.html", receipt=data, error=None,
                 json_url=url_for("dashboard.receipt_json", call_id=call_id, t=request.args.get("t")))


@bp.get("/receipts/<call_id>.json")
def receipt_json(call_id):
    """The same receipt as JSON."""
    data, error = _receipt(call_id)
    if error:
        status, code, message = error
        response = jsonify(error=code, message=message, fields={})
        response.status_code = status
    else:
        response = jsonify(data)
    response.headers["Cache-Control"] = "no-store"
    return response


# ---- PayPal settings -----------------------------------------------------------------------

def _paypal_form(expert, status=200, error=None, saved=False, form=None):
    form = form or {"client_id": expert.paypal_client_id or "", "mode": expert.paypal_mode or "sandbox",
                    "webhook_id": expert.paypal_webhook_id or ""}
    return _page("paypal_settings.html", status=status, expert=expert, csrf=csrf_token(), error=error,
                 saved=saved, form=form, secret_set=bool(expert.paypal_secret_enc),
                 webhook_url=f"{own_origin()}/api/v1/paypal/webhooks/{expert.handle}")


def _read_paypal_form():
    """The form's values, or raise ValueError with what is wrong."""
    client_id = request.form.get("client_id", "").strip()
    secret = request.form.get("secret", "").strip()
    mode = request.form.get("mode", "")
    webhook_id = request.form.get("webhook_id", "").strip()
    if mode not in MODES:
        raise ValueError("Choose sandbox or live.")
    if not client_id:
        raise ValueError("Enter the client id of your PayPal REST app.")
    if len(client_id) > 128 or any(c.isspace() for c in client_id):
        raise ValueError("That is not a PayPal client id (at most 128 characters, no spaces).")
    if len(secret) > 512 or any(c.isspace() for c in secret):
        raise ValueError("That is not a PayPal secret (at most 512 characters, no spaces).")
    if len(webhook_id) > 64 or any(c.isspace() for c in webhook_id):
        raise ValueError("That is not a PayPal webhook id (at most 64 characters, no spaces).")
    return client_id, secret, mode, webhook_id or None


@bp.route("/dashboard/paypal", methods=["GET", "POST"])
def paypal_settings():
    """The expert's own PayPal REST app: checked with PayPal before it is stored."""
    expert = current_expert()
    if expert is None:
        return redirect(url_for("account.login"))
    if request.method == "GET":
        return _paypal_form(expert, saved=request.args.get("saved") == "1")
    check_csrf()
    sent = {k: request.form.get(k, "").strip() for k in ("client_id", "mode", "webhook_id")}
    try:
        client_id, secret, mode, webhook_id = _read_paypal_form()
    except ValueError as e:
        return _paypal_form(expert, 400, str(e), form=sent)
    if not secret:
        # The secret is never shown again: an empty field keeps the stored one, for the same app.
        if not expert.paypal_secret_enc or client_id != expert.paypal_client_id:
            return _paypal_form(expert, 400, "Enter the secret of your PayPal REST app.", form=sent)
        try:
            secret = decrypt_secret(current_app.config, expert.paypal_secret_enc)
        except PayPalError as e:
            return _paypal_form(expert, 400, f"{e.message} Enter the secret again.", form=sent)
    try:  # checked with PayPal (a token is fetched) before anything is stored
        set_paypal_credentials(expert, client_id, secret, mode, webhook_id, current_app.config)
    except PayPalError as e:
        db.session.rollback()
        return _paypal_form(expert, 503 if e.transient else 400, e.message, form=sent)
    return redirect(url_for("dashboard.paypal_settings", saved=1))
