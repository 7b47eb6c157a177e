"""The command line: ``expert create`` makes experts and refuses bad values clearly; on a fresh
instance the commands that need the schema say what to run first; ``expert password``."""
import pytest
import sqlalchemy as sa

from callme import create_app
from callme.config import TestConfig
from callme.extensions import db
from callme.models import Expert

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

CREATE = ["expert", "create", "--email", "ann@example.com", "--handle", "ann", "--name", "Ann Law", "--price",
          "150", "--password", "a-good-password"]
NEEDS_SCHEMA = [
    CREATE,
    ["expert", "password", "--handle", "ann", "--password", "a-good-password"],
    ["expert", "paypal", "--handle", "ann", "--client-id", "x", "--secret", "y", "--no-check"],
    ["payments", "list"],
    ["payments", "retry"],
]


@pytest.fixture
def fresh(tmp_path):
    """An app on an empty SQLite file, as on a fresh instance."""
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app({**config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.sqlite'}"})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("args", NEEDS_SCHEMA, ids=lambda a: " ".join(a[:2]))
def test_commands_on_an_empty_database_say_to_upgrade_it_first(fresh, args):
    result = fresh.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "sqlalchemy" not in result.output.lower()
    assert "run `callme db upgrade` first" in result.output


def test_commands_on_a_database_behind_the_code_say_to_upgrade_it(fresh):
    runner = fresh.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade", "b1d4c2a7e901"]).exit_code == 0
    result = runner.invoke(args=CREATE)
    assert result.exit_code == 1
    assert "run `callme db upgrade` first" in result.output


def test_the_readme_order_works_on_a_fresh_instance(fresh):
    runner = fresh.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    result = runner.invoke(args=CREATE)
    assert result.exit_code == 0, result.output
    with fresh.app_context():
        assert db.session.scalar(sa.select(Expert.handle)) == "ann"


def test_readme_lists_db_upgrade_before_expert_create():
    import pathlib

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Running it yourself", 1)[1].split("\n## ", 1)[0]
    assert section.index("callme db upgrade") < section.index("callme expert create")
    assert section.index("callme expert create") < section.index("callme serve")


def test_expert_password_changes_the_password(runner, make_expert):
    ann = make_expert(handle="ann", price=0, password="the-old-password")
    result = runner.invoke(args=["expert", "password", "--handle", "ANN", "--password", "the-new-password"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Changed the password of ann; every session of ann has ended."
    db.session.expire_all()
    assert ann.check_password("the-new-password") and not ann.check_password("the-old-password")


@pytest.mark.parametrize("args, message", [
    (["--handle", "nobody", "--password", "a-good-password"], "Expert 'nobody' does not exist."),
    (["--handle", "ann", "--password", "short"], "The password needs at least 8 characters."),
])
def test_expert_password_refuses_clearly(runner, make_expert, args, message):
    make_expert(handle="ann", price=0, password="the-old-password")
    result = runner.invoke(args=["expert", "password", *args])
    assert result.exit_code == 2 and message in result.output
    db.session.expire_all()
    assert db.session.scalar(sa.select(Expert).filter_by(handle="ann")).check_password("the-old-password")


# ---- callme expert create -------------------------------------------------------------

def create_args(**overrides):
    values = {"--email": "ann@example.com", "--handle": "ann", "--name": "Ann Law", "--price": "150",
              "--password": "a-good-password", **overrides}
    args = ["expert", "create"]
    for option, value in values.items():
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            args += [option, v]
    return args


def experts():
    db.session.expire_all()
    return db.session.scalars(sa.select(Expert)).all()


def test_cli_creates_an_expert(runner):
    result = runner.invoke(args=create_args(**{
        "--handle": "Ann", "--email": "Ann@Example.com", "--currency": "eur", "--free-seconds": "30",
        "--cap-minutes": "20", "--origin": ["https://ann-law.example/", "https://www.ann-law.example"]}))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Created expert ann (ann@example.com)."
    (expert,) = experts()
    assert (expert.handle, expert.email, expert.display_name, expert.price_minor, expert.currency,
            expert.free_seconds, expert.cap_minutes, expert.allowed_origins) == (
        "ann", "ann@example.com", "Ann Law", 150, "EUR", 30, 20,
        ["https://ann-law.example", "https://www.ann-law.example"])
    assert expert.check_password("a-good-password")
    assert not expert.check_password("another-password")
    assert "a-good-password" not in expert.password_hash


def test_cli_defaults(runner):
    assert runner.invoke(args=create_args()).exit_code == 0
    (expert,) = experts()
    assert (expert.currency, expert.free_seconds, expert.cap_minutes, expert.allowed_origins) == ("USD", 60, 60, [])


def test_cli_password_from_the_environment(runner):
    result = runner.invoke(args=create_args(**{"--password": None}),
                           env={"CALLME_EXPERT_PASSWORD": "from-the-env-123"})
    assert result.exit_code == 0, result.output
    assert experts()[0].check_password("from-the-env-123")


@pytest.mark.parametrize("overrides, message", [
    ({"--handle": "Bad Handle"}, "The handle takes 1-32 lowercase letters"),
    ({"--handle": "-ann"}, "The handle takes 1-32 lowercase letters"),
    ({"--handle": "ann-"}, "The handle takes 1-32 lowercase letters"),
    ({"--handle": "a" * 33}, "The handle takes 1-32 lowercase letters"),
    ({"--handle": "ann_law"}, "The handle takes 1-32 lowercase letters"),
    ({"--email": "not-an-email"}, "The email address is not valid."),
    ({"--currency": "US"}, "The currency must be an ISO 4217 code"),
    ({"--currency": "USDX"}, "The currency must be an ISO 4217 code"),
    ({"--currency": "U$D"}, "The currency must be an ISO 4217 code"),
    ({"--price": "-1"}, "The price cannot be negative."),
    ({"--price": "1.50"}, "'1.50' is not a valid integer"),
    ({"--price": "abc"}, "'abc' is not a valid integer"),
    ({"--price": None}, "Missing option '--price'"),
    ({"--email": None}, "Missing option '--email'"),
    ({"--password": "short"}, "The password needs at least 8 characters."),
    ({"--currency": "ÄÖÜ"}, "The currency must be an ISO 4217 code"),
    ({"--free-seconds": "-5"}, "free"),
    ({"--cap-minutes": "0"}, "cap"),
    ({"--price": "20000000"}, "price"),
    ({"--handle": "dashboard"}, "is taken by a callme page"),
    ({"--handle": "Receipts"}, "is taken by a callme page"),
    ({"--handle": "api"}, "is taken by a callme page"),
])
def test_cli_refuses_bad_values(runner, overrides, message):
    result = runner.invoke(args=create_args(**overrides))
    db.session.rollback()
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Error: " in result.output and message in result.output
    assert "Traceback" not in result.output
    assert experts() == []


def test_cli_refuses_a_taken_handle_or_email(runner):
    assert runner.invoke(args=create_args()).exit_code == 0
    for overrides in ({"--email": "other@example.com"}, {"--handle": "other"}, {"--email": "ANN@example.com",
                                                                               "--handle": "other"}):
        result = runner.invoke(args=create_args(**overrides))
        assert result.exit_code == 2
        assert "An expert with that handle or email already exists." in result.output
    assert len(experts()) == 1
