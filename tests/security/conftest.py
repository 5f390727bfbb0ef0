"""The web fixtures (tests/web/conftest.py) for the security tests that drive the app."""

from tests.web.conftest import (  # noqa: F401 - fixtures
    client,
    other_client,
    web_app,
    web_db_url,
    web_engine,
    web_template,
)
