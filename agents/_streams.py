"""`IOStream`: where agents print their console output and read console input (AutoGen's).

The default stream is the console. `IOStream.set_default(stream)` swaps it for the code inside
a `with` block (a context variable, so concurrent tasks started inside see it too);
`set_global_default` swaps it for the whole process. Agents print delivered messages through
`IOStream.get_default()`, so a web app or a test can capture them.
"""

from __future__ import annotations

import builtins
import contextlib
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterator


class IOStream:
    """Output and input for agents: subclass it and override `print` and `input`.

    `send(event)` receives structured events (a message dict, an event object); by default it
    prints them.
    """

    _global_default: ClassVar[IOStream | None] = None

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        """Show `objects`, as the builtin `print` does."""
        raise NotImplementedError

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        """Ask for a line of input."""
        raise NotImplementedError

    def send(self, message: Any) -> None:
        """Show a structured event; the default prints it."""
        self.print(message)

    @staticmethod
    def set_global_default(stream: IOStream) -> None:
        """Make `stream` the default for every context that did not set its own."""
        IOStream._global_default = stream

    @staticmethod
    def get_global_default() -> IOStream:
        """The process-wide default (the console unless `set_global_default` changed it)."""
        if IOStream._global_default is None:
            IOStream._global_default = IOConsole()
        return IOStream._global_default

    @staticmethod
    def get_default() -> IOStream:
        """The stream agents use here: the innermost `set_default`, else the global default."""
        stream = _current.get()
        return stream if stream is not None else IOStream.get_global_default()

    @staticmethod
    @contextlib.contextmanager
    def set_default(stream: IOStream | None) -> Iterator[None]:
        """Use `stream` as the default inside the `with` block (None: the global default)."""
        token = _current.set(stream)
        try:
            yield
        finally:
            _current.reset(token)


class IOConsole(IOStream):
    """The terminal: the builtin `print` and `input` (`getpass` for passwords)."""

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        builtins.print(*objects, sep=sep, end=end, flush=flush)  # noqa: T201 - the console

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        if password:
            import getpass  # rarely needed: loaded on first use

            return getpass.getpass(prompt)
        return builtins.input(prompt)


_current: ContextVar[IOStream | None] = ContextVar("moot_iostream", default=None)


def console_is_default() -> bool:
    """Whether agents print to the plain console (the fast path writes to stdout directly)."""
    return isinstance(IOStream.get_default(), IOConsole)
