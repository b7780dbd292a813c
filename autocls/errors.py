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
