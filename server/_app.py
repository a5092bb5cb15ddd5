"""The HTTP API and the console: a Starlette app over a `ChatRunner`.

Every request needs a bearer token: the admin token, or (for one chat's routes) the token
`POST /chats` handed out for that chat. Bodies are size-capped and validated by pydantic; every
error is a JSON body with a 4xx status, never a traceback.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

import pydantic
import structlog
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from moot.journal import (
    ChatExistsError,
    ChatFinishedError,
    ChatNotFoundError,
    ChatStatus,
    InputAlreadyAnsweredError,
    JournalConfigError,
    JournalError,
    UnknownInputTokenError,
)

from ._errors import ServerError
from ._feed import feed
from ._models import AnswerApproval, AnswerInput, StartChat
from ._runner import APPROVAL_PREFIX, ChatRunner, opening_message, token_hash

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from moot.journal import ChatStore, ChatSummary
    from moot.runtime import Runtime

    from ._teams import Teams

log = structlog.get_logger("moot.server")

MAX_BODY = 256 * 1024


class _BodyLimit:
    """Refuses a body over `limit` bytes with 413, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _json(413, {"error": f"request body over {self.limit} bytes"})(
                    scope, receive, send
                )
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ServerError(f"request body over {self.limit} bytes", status=413)
            return message

        await self.app(scope, counted, send)


def _json(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _summary(s: ChatSummary, team: str | None = None) -> dict[str, Any]:
    return {
        "chat_id": s.chat_id,
        "status": s.status.value,
        "team": team,
        "turns": s.turns,
        "tokens": s.tokens,
        "cost": s.cost,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "termination": s.termination.reason if s.termination else None,
    }


def _opening_entry(opening: dict[str, Any]) -> dict[str, Any]:
    """A group chat's first message as transcript entry 0 (its turns count from 1)."""
    speaker = str(opening.get("name", "user"))
    return {"number": 0, "speaker": speaker, "message": opening, "tokens": 0, "code_runs": []}


class ServerApp:
    """Builds the Starlette app; `admin_token` opens every route. `runtime` runs the chats
    (e.g. a NATS runtime, for teams whose agents live on workers); by default each chat has
    its own runtime in this process."""

    def __init__(
        self,
        store: ChatStore,
        teams: Teams,
        *,
        admin_token: str,
        max_body: int = MAX_BODY,
        reader_buffer: int = 256,
        send_timeout: float = 30.0,
        runtime: Runtime | None = None,
    ) -> None:
        self.runner = ChatRunner(store, teams, runtime)
        self.store, self.teams = self.runner.store, teams  # writes wake the chat's readers
        self._admin = admin_token
        self._reader_buffer = reader_buffer
        self._send_timeout = send_timeout
        self._chat_tokens: dict[str, str] = {}
        self._teams_of: dict[str, str] = {}
        routes = [
            Route("/", self.console, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/teams", self.list_teams, methods=["GET"]),
            Route("/chats", self.start_chat, methods=["POST"]),
            Route("/chats", self.list_chats, methods=["GET"]),
            Route("/chats/{chat_id}", self.get_chat, methods=["GET"]),
            Route("/chats/{chat_id}/events", self.events, methods=["GET"]),
            Route("/chats/{chat_id}/input", self.answer_input, methods=["POST"]),
            Route("/chats/{chat_id}/approval", self.answer_approval, methods=["POST"]),
            Route("/chats/{chat_id}/stop", self.stop, methods=["POST"]),
            Route("/agui", self.agui, methods=["POST"]),
        ]
        handlers: dict[Any, Any] = {
            ServerError: self._server_error,
            pydantic.ValidationError: self._invalid,
            HTTPException: self._http_error,
            ChatNotFoundError: lambda r, e: _json(404, {"error": "no such chat"}),
            ChatExistsError: lambda r, e: _json(409, {"error": "that chat id is taken"}),
            ChatFinishedError: lambda r, e: _json(409, {"error": "the chat has ended"}),
            UnknownInputTokenError: lambda r, e: _json(404, {"error": "no such question"}),
            InputAlreadyAnsweredError: lambda r, e: _json(409, {"error": "answered already"}),
            JournalConfigError: lambda r, e: _json(400, {"error": str(e)}),
            JournalError: lambda r, e: _json(503, {"error": type(e).__name__}),
            Exception: self._crash,
        }
        self.app = Starlette(routes=routes, exception_handlers=handlers, lifespan=self._lifespan)
        self.asgi: ASGIApp = _BodyLimit(self.app, max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.runner.running():
            yield

    # -- errors -----------------------------------------------------------------------------

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, ServerError) else 400
        return _json(status, {"error": str(exc)})

    async def _invalid(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, pydantic.ValidationError)
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return _json(422, {"error": "invalid request body", "problems": problems})

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json(exc.status_code, {"error": exc.detail})

    async def _crash(self, request: Request, exc: Exception) -> Response:
        log.error("request.failed", path=request.url.path, error=repr(exc))
        return _json(500, {"error": "internal error (logged on the server)"})

    # -- auth -------------------------------------------------------------------------------

    def _token(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        query = request.query_params.get("access_token")  # EventSource cannot set headers
        if query:
            return query
        raise ServerError("a bearer token is required", status=401)

    def _admin_only(self, request: Request) -> None:
        if not hmac.compare_digest(self._token(request), self._admin):
            raise ServerError("this route needs the admin token", status=403)

    async def _chat_access(self, request: Request) -> str:
        """The chat id of the route, once the token is the admin's or that chat's."""
        return await self._chat_access_to(request, str(request.path_params["chat_id"]))

    async def _chat_access_to(self, request: Request, chat_id: str) -> str:
        """`chat_id`, once the token is the admin's or that chat's."""
        token = self._token(request)
        if hmac.compare_digest(token, self._admin):
            return str(chat_id)
        wanted = self._chat_tokens.get(chat_id)
        if wanted is None:
            try:
                spec = (await self.store.definition(chat_id)).spec
            except ChatNotFoundError:
                raise ServerError("this token does not open that chat", status=403) from None
            wanted = self._chat_tokens[chat_id] = str(spec.get("token_sha256", ""))
        if not hmac.compare_digest(token_hash(token), wanted):
            raise ServerError("this token does not open that chat", status=403)
        return str(chat_id)

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServerError("the body is not JSON", status=400) from None

    # -- routes -----------------------------------------------------------------------------

    async def console(self, request: Request) -> Response:
        page = resources.files("moot.server").joinpath("static/console.html").read_text()
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def healthz(self, request: Request) -> Response:
        """`GET /healthz` needs no token: it says only that the server answers."""
        return _json(200, {"ok": True, "chats_running": self.runner.active()})

    async def openapi(self, request: Request) -> Response:
        from ._openapi import openapi_schema

        return _json(200, openapi_schema())

    async def metrics(self, request: Request) -> Response:
        self._admin_only(request)
        return _json(200, {**self.runner.metrics.snapshot(), "running": self.runner.active()})

    async def list_teams(self, request: Request) -> Response:
        self._admin_only(request)
        return _json(200, {"teams": self.teams.names()})

    async def start_chat(self, request: Request) -> Response:
        self._admin_only(request)
        body = StartChat.model_validate(await self._body(request))
        team = self.teams.get(body.team)
        chat_id, token = await self.runner.start(team, body.message, max_turns=body.max_turns)
        self._chat_tokens[chat_id] = token_hash(token)
        self._teams_of[chat_id] = team.name
        return _json(201, {"chat_id": chat_id, "token": token})

    async def list_chats(self, request: Request) -> Response:
        self._admin_only(request)
        status_text = request.query_params.get("status")
        try:
            status = ChatStatus(status_text) if status_text else None
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            raise ServerError("status or limit is not valid", status=400) from None
        if not 1 <= limit <= 500:
            raise ServerError("limit must be within 1..500", status=400)
        page = await self.store.list_chats(
            status=status, limit=limit, cursor=request.query_params.get("cursor")
        )
        chats = []
        for s in page.chats:
            team = self._teams_of.get(s.chat_id)
            if team is None:
                with contextlib.suppress(JournalError):
                    team = str((await self.store.definition(s.chat_id)).spec.get("team"))
                    self._teams_of[s.chat_id] = team
            chats.append(_summary(s, team))
        return _json(200, {"chats": chats, "next_cursor": page.next_cursor})

    async def get_chat(self, request: Request) -> Response:
        chat_id = await self._chat_access(request)
        summary = await self.store.summary(chat_id)
        definition = await self.store.definition(chat_id)
        turns = await self.store.turns(chat_id)
        opening = opening_message(definition.spec)
        first = [] if opening is None else [_opening_entry(opening)]
        pending = [
            {
                "token": q.token,
                "turn": q.turn,
                "approval": q.prompt.startswith(APPROVAL_PREFIX),
                "prompt": q.prompt.removeprefix(APPROVAL_PREFIX),
            }
            for q in await self.store.inputs(chat_id)
            if q.answer is None
        ]
        return _json(
            200,
            {
                **_summary(summary, str(definition.spec.get("team"))),
                "transcript": first
                + [
                    {
                        "number": t.number,
                        "speaker": t.speaker,
                        "message": t.message,
                        "tokens": t.usage.total_tokens,
                        "code_runs": [
                            {"exit_code": r.exit_code, "output": r.output} for r in t.code_runs
                        ],
                    }
                    for t in turns
                ],
                "pending": pending,
            },
        )

    async def events(self, request: Request) -> Response:
        chat_id = await self._chat_access(request)
        await self.store.summary(chat_id)  # 404 before the stream starts
        resume = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        if not resume.isdigit():
            raise ServerError("Last-Event-ID must be an event id", status=400)
        return EventSourceResponse(
            feed(self.runner, chat_id, int(resume), buffer=self._reader_buffer),
            send_timeout=self._send_timeout,
            ping=15,
        )

    async def _open_question(self, chat_id: str, token: str | None, *, approval: bool) -> str:
        for q in await self.store.inputs(chat_id):
            if q.answer is None and q.prompt.startswith(APPROVAL_PREFIX) == approval:
                if token is None or q.token == token:
                    return q.token
        what = "approval" if approval else "question"
        raise ServerError(f"this chat has no open {what} with that token", status=409)

    async def answer_input(self, request: Request) -> Response:
        chat_id = await self._chat_access(request)
        body = AnswerInput.model_validate(await self._body(request))
        token = await self._open_question(chat_id, body.token, approval=False)
        await self.store.answer_input(token, body.text)
        return _json(200, {"answered": token})

    async def answer_approval(self, request: Request) -> Response:
        chat_id = await self._chat_access(request)
        body = AnswerApproval.model_validate(await self._body(request))
        token = await self._open_question(chat_id, body.token, approval=True)
        verdict = "approve" if body.approved else "deny"
        await self._approve(chat_id, token, f"{verdict} {body.reason}".strip())
        return _json(200, {"answered": token, "approved": body.approved})

    async def _approve(self, chat_id: str, token: str, answer: str) -> None:
        await self.store.answer_input(token, answer)
        approved = answer.startswith("approve")
        await self.store.append_event(
            chat_id, "approval.answered", {"token": token, "approved": approved}
        )

    async def agui(self, request: Request) -> Response:
        """`POST /agui`: an AG-UI run; a new thread starts a chat, a known one resumes it."""
        from ._agui import agui_stream, last_user_text, parse_run, resume_answer

        run = parse_run(await self._body(request))
        chat_id, opening, headers = run.thread_id, None, {}
        if not await self._exists(chat_id):
            self._admin_only(request)
            props = run.forwarded_props if isinstance(run.forwarded_props, dict) else {}
            if not props.get("team"):
                raise ServerError("forwardedProps.team names a new thread's team", status=422)
            team = self.teams.get(str(props["team"]))
            opening = last_user_text(run)
            _, token = await self.runner.start(team, opening, max_turns=None, chat_id=chat_id)
            self._chat_tokens[chat_id] = token_hash(token)
            self._teams_of[chat_id] = team.name
            headers["X-Moot-Chat-Token"] = token
            after = 0
        else:
            await self._chat_access_to(request, chat_id)
            after = await self._resume_run(run, chat_id, resume_answer)
        stream = agui_stream(
            self.runner,
            chat_id,
            run.run_id,
            after=after,
            buffer=self._reader_buffer,
            opening=opening,
        )
        return EventSourceResponse(
            stream, send_timeout=self._send_timeout, ping=15, headers=headers
        )

    async def _exists(self, chat_id: str) -> bool:
        try:
            await self.store.summary(chat_id)
        except ChatNotFoundError:
            return False
        return True

    async def _resume_run(self, run: Any, chat_id: str, resume_answer: Any) -> int:
        """Answer the interrupt the run resumes; the id of the chat's last event before it."""
        questions = [q for q in await self.store.inputs(chat_id) if q.answer is None]
        if not questions:
            raise ServerError("this thread has no interrupt to resume", status=409)
        question = questions[-1]
        approval = question.prompt.startswith(APPROVAL_PREFIX)
        found = resume_answer(run, approval=approval)
        if found is None or found[0] != question.token:
            raise ServerError("resume the thread's open interrupt by its id", status=409)
        after, page = 0, await self.store.events(chat_id, limit=1000)
        while page:
            after = page[-1].id
            page = await self.store.events(chat_id, after=after, limit=1000)
        if approval:
            await self._approve(chat_id, question.token, found[1])
        else:
            await self.store.answer_input(question.token, found[1])
        return after

    async def stop(self, request: Request) -> Response:
        chat_id = await self._chat_access(request)
        stopped = await self.runner.stop(chat_id)
        return _json(200, {"stopped": stopped})
