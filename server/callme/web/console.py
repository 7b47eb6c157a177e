"""The expert console page: presence, rings, the call, the snippet."""
from flask import Blueprint, current_app, render_template

from ..security import csrf_token, login_required, secure
from ..urls import own_origin

bp = Blueprint("console", __name__)


@bp.get("/console")
@login_required
def console(expert):
    """The expert console: presence, rings, the call, the snippet."""
    return secure(current_app.make_response(render_template("console.html", expert=expert, csrf=csrf_token(),
                                                            origin=own_origin())), referrer=None)
