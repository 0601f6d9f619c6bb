from tests.api.helpers import client  # noqa: F401  (fixture)
