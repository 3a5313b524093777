"""A pack whose import fails, as a broken third-party pack would."""

import a_module_that_does_not_exist  # noqa: F401


def register():
    pass
