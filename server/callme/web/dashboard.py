"""The expert's dashboard: earnings, calls, unsettled payments, the CSV, PayPal settings."""
import csv
import io

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..calls.tokens import tokens_for
from ..extensions import db
from ..models import utcnow
from ..money import books, earnings
from ..money.paypal import PayPalError, clean_credentials, kept_secret, set_paypal_credentials
from ..security import check_csrf, csrf_token, login_required, secure
from ..urls import own_origin

bp = Blueprint("dashboard", __name__)

CHART_DAYS = 30


@bp.context_processor
def _helpers():
    return {"money": earnings.format_money, "period_labels": earnings.PERIOD_LABELS}


def _page(template, status=200, **context):
    """Render one of this blueprint's pages with the pages' CSP, never cached."""
    # Receipt links on the dashboard carry their token: never hand it on to another site.
    return secure(current_app.make_response((render_template(template, **context), status)))


def now_utc():
    """Now, naive UTC, from the clock that stamps the ledger's rows (tests pin it here)."""
    return utcnow()


def tokens():
    return tokens_for(current_app.config)


@bp.get("/dashboard")
@login_required
def dashboard(expert):
    """Earnings, the chart, the calls (paginated), unsettled payments."""
    now = now_utc()
    rows = books.earning_rows(expert.id)
    totals = earnings.totals(rows, now)
    currencies = list(totals) or [expert.currency]
    charts = [(currency, earnings.chart(earnings.daily_series(rows, now, currency, CHART_DAYS), currency))
              for currency in currencies]

    page, calls = books.calls_page(expert.id, request.args.get("page", 1))
    issuer = tokens()
    table = [dict(row, receipt=url_for("receipts.receipt_page", call_id=row["call_id"],
                                       t=issuer.receipt_token(row["call_id"])))
             for row in books.call_rows(expert.id, calls)]
    return _page("dashboard.html", expert=expert, csrf=csrf_token(), totals=totals, currencies=currencies,
                 periods=[name for name, _ in earnings.PERIODS], charts=charts, calls=table, page=page,
                 unsettled=books.unsettled(expert), now=earnings.human_utc(now))


@bp.get("/dashboard/calls.csv")
@login_required
def calls_csv(expert):
    """All the expert's calls, oldest first, as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(earnings.CSV_COLUMNS)
    for row in books.call_rows(expert.id, books.all_calls(expert.id)):
        writer.writerow(earnings.csv_row(row))
    response = current_app.response_class(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="callme-{expert.handle}-calls.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


# ---- PayPal settings -----------------------------------------------------------------------

def _paypal_form(expert, status=200, error=None, saved=False, form=None):
    form = form or {"client_id": expert.paypal_client_id or "", "mode": expert.paypal_mode or "sandbox",
                    "webhook_id": expert.paypal_webhook_id or ""}
    return _page("paypal_settings.html", status=status, expert=expert, csrf=csrf_token(), error=error,
                 saved=saved, form=form, secret_set=bool(expert.paypal_secret_enc),
                 webhook_url=f"{own_origin()}/api/v1/paypal/webhooks/{expert.handle}")


@bp.route("/dashboard/paypal", methods=["GET", "POST"])
@login_required
def paypal_settings(expert):
    """The expert's own PayPal REST app: checked with PayPal before it is stored."""
    if request.method == "GET":
        return _paypal_form(expert, saved=request.args.get("saved") == "1")
    check_csrf()
    sent = {k: request.form.get(k, "").strip() for k in ("client_id", "mode", "webhook_id")}
    try:
        client_id, secret, mode, webhook_id = clean_credentials(
            sent["client_id"], request.form.get("secret", ""), sent["mode"], sent["webhook_id"], secret_required=False)
        secret = secret or kept_secret(expert, client_id, current_app.config)
        set_paypal_credentials(expert, client_id, secret, mode, webhook_id, current_app.config)
    except PayPalError as e:  # the form says why, and nothing was stored
        db.session.rollback()
        return _paypal_form(expert, e.status, e.message, form=sent)
    return redirect(url_for("dashboard.paypal_settings", saved=1))

