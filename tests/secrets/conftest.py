from tests.secrets import helpers

own_home = helpers.own_home  # each test here has a home of its own (autouse)
project = helpers.project
