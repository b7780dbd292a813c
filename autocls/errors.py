"""Exceptions autocls raises for problems the user can fix.

The CLI prints a :class:`UserError` as one line and exits non-zero; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: an unknown name, a missing folder, a malformed file.

    Example:
        >>> raise UserError("unknown dataset 'cifar11'; known: cifar10, cifar100")
        Traceback (most recent call last):
        ...
        autocls.errors.UserError: unknown dataset 'cifar11'; known: cifar10, cifar100
    """


def short_repr(value, limit: int = 120) -> str:
    """A repr for messages, bounded in depth and length: a YAML alias bomb expands to billions of items."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxlist, shortener.maxdict, shortener.maxstring = 2, 4, 4, 60
    text = shortener.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
