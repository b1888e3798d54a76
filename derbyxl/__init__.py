"""derbyxl: a city council's quarterly performance returns, end to end in Excel.

The library is usable without the CLI:

    from derbyxl import load_register, Period, validate_file, consolidate
"""

__version__ = "0.1.0"

from derbyxl.periods import Period  # noqa: E402
from derbyxl.register import Item, Register, RegisterError, load_register  # noqa: E402

__all__ = ["__version__", "Period", "Item", "Register", "RegisterError", "load_register"]


def __getattr__(name):
    # Heavier entry points are imported lazily so `import derbyxl` stays cheap.
    if name in {"validate_file", "validate_paths"}:
        from derbyxl import validate

        return getattr(validate, name)
    if name == "consolidate":
        from derbyxl.consolidate import consolidate

        return consolidate
    if name == "write_templates":
        from derbyxl.template import write_templates

        return write_templates
    if name == "History":
        from derbyxl.history import History

        return History
    raise AttributeError(name)
