"""The agent base class, the `@handler` decorator, and the context an agent is built with."""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin

from ._errors import RegistrationError

if TYPE_CHECKING:
    from ._envelope import Envelope
    from ._ids import AgentId, TopicId
    from ._runtime import Runtime

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
HandlerFn = Callable[[Any, Any, "Envelope"], Awaitable[Any]]

_HANDLES_ATTR = "__moot_handles__"


def handler(fn: F) -> F:
    """Mark an `async def on_x(self, message: X, ctx: Envelope)` method as the handler for `X`.

    The message type comes from the annotation of the first parameter after `self` (only that
    one is resolved, so `ctx`'s type may be imported for type checking only); a union registers
    the method for each member. Lookup follows the message type's MRO, so a handler for a base
    class also receives its subclasses unless a closer handler exists.
    """
    is_async = inspect.iscoroutinefunction(fn)
    if not is_async:
        raise RegistrationError(f"handler {fn.__qualname__} must be an async def")
    setattr(fn, _HANDLES_ATTR, True)
    return fn


def _message_types(owner: type, fn: Callable[..., Any]) -> tuple[type, ...]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2:
        raise RegistrationError(
            f"handler {fn.__qualname__} must take (self, message, ctx); it has {len(params) - 1}"
            " parameter(s) after self"
        )
    hint: Any = fn.__annotations__.get(params[1].name)
    if hint is None:
        raise RegistrationError(
            f"handler {fn.__qualname__} needs a type annotation on its message parameter"
        )
    if isinstance(hint, str):
        module = inspect.getmodule(fn) or inspect.getmodule(owner)
        namespace = dict(vars(module)) if module is not None else {}
        namespace.setdefault(owner.__name__, owner)
        try:
            hint = eval(hint, namespace)  # resolving an annotation string, as typing does
        except Exception as exc:
            raise RegistrationError(
                f"cannot resolve the message type {hint!r} of handler {fn.__qualname__}: {exc}"
                " (define the message class at module level)"
            ) from exc
    members = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    out: list[type] = []
    for member in members:
        origin = get_origin(member) or member
        if not isinstance(origin, type):
            raise RegistrationError(
                f"handler {fn.__qualname__}: {member!r} is not a class that messages can be"
            )
        out.append(origin)
    return tuple(out)


class Agent:
    """Base class for actors. Subclasses declare `@handler` methods; the runtime builds instances.

    An agent handles one message at a time. `on_activate` and `on_passivate` bracket its life in
    memory: passivation hands back a state mapping that the next activation receives.
    """

    _moot_handlers: dict[type, HandlerFn] = {}  # noqa: RUF012 (rebuilt per subclass)
    _moot_dispatch: dict[type, HandlerFn | None] = {}  # noqa: RUF012 (rebuilt per subclass)
    _moot_built: bool = False

    def __init__(self, context: AgentContext) -> None:
        self.context = context

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._moot_handlers = {}
        cls._moot_dispatch = {}
        cls._moot_built = False

    @property
    def id(self) -> AgentId:
        """This instance's address."""
        return self.context.id

    async def on_activate(self, state: Mapping[str, Any] | None) -> None:
        """Called before the first message after creation, with the state saved at passivation."""

    async def on_passivate(self) -> Mapping[str, Any] | None:
        """Called before the instance leaves memory (idle timeout or graceful stop); save here."""
        return None

    @classmethod
    def _moot_build_handlers(cls) -> None:
        """Collect `@handler` methods across the MRO, nearest class first."""
        table: dict[type, HandlerFn] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                if getattr(member, _HANDLES_ATTR, False):
                    for message_type in _message_types(klass, member):
                        table[message_type] = getattr(cls, name)
        cls._moot_handlers = table
        cls._moot_dispatch = {}
        cls._moot_built = True

    @classmethod
    def handler_for(cls, message_type: type) -> HandlerFn | None:
        """The handler for `message_type`, following its MRO; None when there is none."""
        dispatch = cls._moot_dispatch
        try:
            return dispatch[message_type]
        except KeyError:
            pass
        if not cls._moot_built:
            cls._moot_build_handlers()
            dispatch = cls._moot_dispatch
        found: HandlerFn | None = None
        for klass in message_type.__mro__:
            found = cls._moot_handlers.get(klass)
            if found is not None:
                break
        dispatch[message_type] = found
        return found

    @classmethod
    def handled_types(cls) -> tuple[type, ...]:
        """The message types this class declares handlers for."""
        if not cls._moot_built:
            cls._moot_build_handlers()
        return tuple(cls._moot_handlers)


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an agent is built with: its id and a handle on the runtime for sending as itself."""

    id: AgentId
    runtime: Runtime

    async def send(self, message: Any, recipient: AgentId, *, timeout: float | None = None) -> Any:
        """Request/response to `recipient`, with this agent as the sender (see `Runtime.send`)."""
        return await self.runtime.send(message, recipient, sender=self.id, timeout=timeout)

    async def tell(self, message: Any, recipient: AgentId) -> None:
        """Fire-and-forget to `recipient`, with this agent as the sender."""
        await self.runtime.tell(message, recipient, sender=self.id)

    async def publish(self, message: Any, topic: TopicId) -> None:
        """Publish to `topic`, with this agent as the sender (it does not receive its own)."""
        await self.runtime.publish(message, topic, sender=self.id)


AgentFactory = Callable[[AgentContext], Agent | Awaitable[Agent]]
"""Builds one agent instance for an id; sync or async. Called on activation and on restart."""
