"""A CPO built on extrawest-ocpi (`py_ocpi`), the OCPI 2.2.1 peer of tests/ocpi-peer.

evflex's own code never parses what evflex sends here: the library's FastAPI application does,
with its own routers and pydantic schemas (`py_ocpi.get_application`, CPO role, modules
credentials, locations, sessions, cdrs, tokens and chargingprofiles). This module only gives
the library what it asks its users for:

- `MemoryCrud`: the `Crud` interface the library's routers call, over an in-memory `CpoState`
  (registered eMSPs and their tokens, received Tokens, the CPO's own Sessions, received
  charging profiles);
- `SchemaAdapter`: the `Adapter` interface, building the library's schema objects from dicts
  (so what the CPO answers and pushes is serialised by the library);
- `MemoryAuthenticator`: the library's token A / token C lists;
- `Recorder`: an ASGI wrapper around the library's app recording every request evflex makes
  (method, path, query, body, answer) and whether the library's validation accepted it. A
  request the library rejects (FastAPI's `RequestValidationError`, HTTP 422, with the
  library's pydantic errors) is recorded with the errors; the tests fail on any.

The library reads its settings (host, protocol, party codes) from the environment when it is
imported, and builds its endpoint URLs from them then: `PORT` is chosen, and the environment
set, before `py_ocpi` is imported. One CPO per process.

Spec corrections (`SPEC_CORRECTIONS`): where extrawest-ocpi 2025.7.16's schemas contradict
OCPI 2.2.1 itself, the schema field is replaced, before the app is built, by the field the
specification defines, and nothing else. Each correction names the specification's text; the
tests check separately that evflex's real bodies fail the uncorrected library schema at exactly
those fields and nowhere else (tests/ocpi-peer/test_conformance.py), so a correction can
neither hide an evflex defect nor outlive a library fix unnoticed. OCPI_PEER_NO_SPEC_CORRECTIONS=1
runs with the library exactly as shipped (then the envelope check refuses evflex's first answer
without `data`, and the flow stops there).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT = int(os.environ.get("OCPI_PEER_CPO_PORT") or _free_port())
COUNTRY, PARTY = "NL", "EXA"
BASE = f"http://127.0.0.1:{PORT}"
# py_ocpi.core.config.Settings (pydantic BaseSettings) reads these at import.
os.environ["OCPI_HOST"] = f"127.0.0.1:{PORT}"
os.environ["PROTOCOL"] = "http"
os.environ["COUNTRY_CODE"] = COUNTRY
os.environ["PARTY_ID"] = PARTY
# CiStrings: the library lowercases every CiString it parses or builds by default
# (CI_STRING_LOWERCASE_PREFERENCE=True: "NL"/"EXA"/"LOC-1" become "nl"/"exa"/"loc-1"). The flow
# runs with its other setting (upper case: the ids used here are upper case, so the library's
# objects carry them unchanged); test_conformance.py's CiString test puts the default back
# (`lowercase_cistrings()`) to check that evflex takes ids in any case, as OCPI requires.
os.environ.setdefault("CI_STRING_LOWERCASE_PREFERENCE", "false")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import Request  # noqa: E402
from fastapi.exception_handlers import request_validation_exception_handler  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from pydantic.fields import ModelField  # noqa: E402

import py_ocpi  # noqa: E402
from py_ocpi import get_application  # noqa: E402
from py_ocpi.core.authentication.authenticator import Authenticator  # noqa: E402
from py_ocpi.core.config import logger as library_logger, settings  # noqa: E402
from py_ocpi.core.data_types import CiString, Number  # noqa: E402
from py_ocpi.core.enums import Action, ModuleID, RoleEnum  # noqa: E402
from py_ocpi.core.schemas import OCPIResponse  # noqa: E402
from py_ocpi.modules.cdrs.v_2_2_1.schemas import Cdr, CdrLocation  # noqa: E402
from py_ocpi.modules.chargingprofiles.v_2_2_1 import background_tasks  # noqa: E402
from py_ocpi.modules.chargingprofiles.v_2_2_1.schemas import (  # noqa: E402
    ActiveChargingProfileResult,
    ChargingProfile,
    ChargingProfilePeriod,
    ChargingProfileResponse,
    ChargingProfileResult,
)
from py_ocpi.modules.credentials.v_2_2_1.schemas import Credentials  # noqa: E402
from py_ocpi.modules.locations.v_2_2_1.schemas import Location  # noqa: E402
from py_ocpi.modules.sessions.v_2_2_1.schemas import Session  # noqa: E402
from py_ocpi.modules.tokens.v_2_2_1.schemas import AuthorizationInfo, Token  # noqa: E402
from py_ocpi.modules.versions.enums import VersionNumber  # noqa: E402

LIBRARY_VERSION = py_ocpi.__version__
# The library logs every request at INFO on its own handler; its warnings are enough here.
logging.getLogger(library_logger.name).setLevel(logging.WARNING)

# --- spec corrections -------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecCorrection:
    """One schema field of the library replaced by the one OCPI 2.2.1 defines."""

    model: Any
    library_field: Optional[str]  # the library's field, removed (None: the library has none)
    spec_field: str  # the specification's field, added in its place
    annotation: Any  # its type (Optional[...] when the specification makes it optional)
    spec: str  # where OCPI 2.2.1 defines it
    library: str  # what extrawest-ocpi 2025.7.16 has instead


SPEC_CORRECTIONS = [
    SpecCorrection(
        ChargingProfile,
        "charging_profile_period",
        "charging_profile_period",
        List[ChargingProfilePeriod],
        "mod_charging_profiles.asciidoc, ChargingProfile class: charging_profile_period "
        "ChargingProfilePeriod * ('List of ChargingProfilePeriod elements defining maximum power "
        "or current usage over time')",
        "charging_profile_period: ChargingProfilePeriod: exactly one object, a JSON list is refused "
        "('value is not a valid dict')",
    ),
    SpecCorrection(
        ChargingProfile,
        "min_charge_rate",
        "min_charging_rate",
        Optional[Number],
        "mod_charging_profiles.asciidoc, ChargingProfile class: min_charging_rate number ? "
        "(optional)",
        "min_charge_rate: Number: a field of another name, and required",
    ),
    SpecCorrection(
        CdrLocation,
        None,
        "evse_uid",
        CiString(36),
        "mod_cdrs.asciidoc, CdrLocation class: evse_uid CiString(36) 1 (required; the "
        "specification's cdr_example.json has it)",
        "no evse_uid: a CDR the library serialises lacks a field OCPI requires",
    ),
    SpecCorrection(
        OCPIResponse,
        "data",
        "data",
        Optional[Union[list, dict, str]],
        "transport_and_format.asciidoc, Response format: data Array or Object or String, "
        "cardinality '* or ?'; its example 'Response with an error (contains no data field)'",
        "data: Union[list, dict]: required",
    ),
]


def _field(model, name: str, annotation) -> ModelField:
    optional = type(None) in getattr(annotation, "__args__", ())
    return ModelField.infer(
        name=name,
        value=None if optional else ...,
        annotation=annotation,
        class_validators=None,
        config=model.__config__,
    )


# (model, spec field) -> (library field name, library ModelField, corrected ModelField)
_SWAPS: dict = {}


def apply_spec_corrections() -> None:
    """Patches the library's schema classes in place: pydantic v1 validates against a model's
    `__fields__` when it validates, so the library's routers (which parse request bodies with
    these classes) use the corrected fields."""
    for c in SPEC_CORRECTIONS:
        key = (c.model.__name__, c.spec_field)
        if key in _SWAPS:
            continue
        original = c.model.__fields__.pop(c.library_field) if c.library_field else None
        corrected = _field(c.model, c.spec_field, c.annotation)
        c.model.__fields__[c.spec_field] = corrected
        _SWAPS[key] = (c, original, corrected)


class uncorrected:
    """`with uncorrected(): ...` validates with the library's schemas exactly as shipped."""

    def __enter__(self):
        for c, original, _ in _SWAPS.values():
            c.model.__fields__.pop(c.spec_field, None)
            if c.library_field:
                c.model.__fields__[c.library_field] = original
        return self

    def __exit__(self, *exc):
        for c, _, corrected in _SWAPS.values():
            if c.library_field:
                c.model.__fields__.pop(c.library_field, None)
            c.model.__fields__[c.spec_field] = corrected
        return False


if os.environ.get("OCPI_PEER_NO_SPEC_CORRECTIONS") != "1":
    apply_spec_corrections()

# --- state ------------------------------------------------------------------------------------


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@dataclass
class Exchange:
    """One request evflex made to the CPO and the library's answer."""

    method: str
    path: str
    query: str
    headers: dict
    body: Any
    status: int = 0
    response: Any = None
    validation_errors: Optional[list] = None
    done: bool = False  # the library's answer has been sent whole

    @property
    def validated(self) -> bool:
        return self.validation_errors is None and self.status != 422

    def __str__(self) -> str:
        q = f"?{self.query}" if self.query else ""
        return f"{self.method} {self.path}{q} -> HTTP {self.status}"


@dataclass
class Outbound:
    """A request the library's background tasks made to evflex, and evflex's answer."""

    method: str
    url: str
    body: Any
    status: int
    response: Any


@dataclass
class CpoState:
    # Tokens a party may present to this CPO: registration tokens (A) and credentials tokens.
    tokens_a: set = field(default_factory=set)
    tokens_c: set = field(default_factory=set)
    # token a party presents to us -> {"credentials": their Credentials dict, "endpoints": [...],
    # "ours": the token we present to them}
    parties: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)  # (cc, pid, uid) upper -> Token dict
    sessions: dict = field(default_factory=dict)  # session id (upper) -> Session dict
    profiles: list = field(default_factory=list)  # (session_id, SetChargingProfile dict)
    cleared: list = field(default_factory=list)  # session ids of ClearProfile requests
    active_queries: list = field(default_factory=list)  # (session_id, duration, response_url)
    # The answer the CPO gives a ChargingProfile PUT/DELETE/GET (ChargingProfileResponse).
    profile_answer: dict = field(default_factory=lambda: {"result": "ACCEPTED", "timeout": 30})
    # Whether the library's background task posts the ChargingProfileResult to evflex with the
    # right token (False: with a token evflex does not know, so the result never arrives).
    post_results: bool = True
    exchanges: list = field(default_factory=list)
    outbound: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


STATE = CpoState()


def reset() -> None:
    """A fresh state, in place (the app's interfaces hold the module's STATE)."""
    with STATE.lock:
        fresh = CpoState()
        for name in fresh.__dataclass_fields__:
            if name != "lock":
                setattr(STATE, name, getattr(fresh, name))


def new_token_a() -> str:
    token = secrets.token_hex(16)
    STATE.tokens_a.add(token)
    return token


# --- the interfaces the library asks for ------------------------------------------------------


def _key(*parts) -> tuple:
    return tuple(str(p).upper() for p in parts)


def _our_credentials(token: str) -> dict:
    return {
        "token": token,
        "url": f"{BASE}/ocpi/versions",
        "roles": [
            {
                "role": "CPO",
                "business_details": {"name": "extrawest-ocpi test CPO"},
                "party_id": PARTY,
                "country_code": COUNTRY,
            }
        ],
    }


class MemoryAuthenticator(Authenticator):
    """The library's token check (`Authenticator.authenticate*`) over the CPO's token lists."""

    @classmethod
    async def get_valid_token_c(cls) -> List[str]:
        return list(STATE.tokens_c)

    @classmethod
    async def get_valid_token_a(cls) -> List[str]:
        return list(STATE.tokens_a)


class MemoryCrud:
    async def get(self, module: ModuleID, role: RoleEnum, id, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            party = STATE.parties.get(id)
            return _our_credentials(party["ours_presented_by_them"]) if party else None
        if module == ModuleID.tokens:
            return STATE.tokens.get(_key(kwargs.get("country_code"), kwargs.get("party_id"), id))
        if module == ModuleID.sessions:
            return STATE.sessions.get(_key(id)[0])
        if module == ModuleID.hub_client_info:
            # The library's charging-profile background tasks ask here for the Charge Point's
            # answer (`crud.get(ModuleID.hub_client_info, …)`, see background_tasks.py).
            if "duration" in kwargs:  # GET ActiveChargingProfile
                session = STATE.sessions.get(_key(kwargs["session_id"])[0])
                if not session or not STATE.profiles:
                    return {"result": "UNKNOWN"}
                last = STATE.profiles[-1][1]
                return {
                    "result": "ACCEPTED",
                    "profile": {
                        "start_date_time": last["charging_profile"].get("start_date_time")
                        or session["start_date_time"],
                        "charging_profile": last["charging_profile"],
                    },
                }
            if "charging_profile" in kwargs:  # PUT: the Charge Point took the profile
                return {"result": "ACCEPTED"}
            return None  # DELETE: "no result pending" (the library then reports ACCEPTED)
        raise NotImplementedError(f"get {module}")

    async def list(self, module, role, filters, *args, **kwargs):
        return [], 0, True

    async def create(self, module: ModuleID, role: RoleEnum, data: dict, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            # An eMSP registered with token A (`auth_token`): it presents a new token C from
            # now on, token A is used up; we call it with the token in its credentials.
            token_a = kwargs["auth_token"]
            token_c = secrets.token_hex(16)
            with STATE.lock:
                STATE.tokens_a.discard(token_a)
                STATE.tokens_c.add(token_c)
                STATE.parties[token_c] = {
                    "credentials": data["credentials"],
                    "endpoints": data["endpoints"],
                    "ours": data["credentials"]["token"],
                    "ours_presented_by_them": token_c,
                }
            return _our_credentials(token_c)
        if module == ModuleID.tokens:
            key = _key(kwargs.get("country_code"), kwargs.get("party_id"), data["uid"])
            STATE.tokens[key] = data
            return data
        raise NotImplementedError(f"create {module}")

    async def update(self, module: ModuleID, role: RoleEnum, data: dict, id, *args, **kwargs):
        if module == ModuleID.tokens:
            STATE.tokens[_key(kwargs.get("country_code"), kwargs.get("party_id"), id)] = data
            return data
        if module == ModuleID.credentials_and_registration:
            old = kwargs["auth_token"]
            party = STATE.parties.pop(old)
            STATE.tokens_c.discard(old)
            token_c = secrets.token_hex(16)
            STATE.tokens_c.add(token_c)
            party.update(credentials=data["credentials"], endpoints=data["endpoints"],
                         ours=data["credentials"]["token"], ours_presented_by_them=token_c)
            STATE.parties[token_c] = party
            return _our_credentials(token_c)
        raise NotImplementedError(f"update {module}")

    async def delete(self, module: ModuleID, role: RoleEnum, id, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            STATE.parties.pop(id, None)
            STATE.tokens_c.discard(id)
            return None
        raise NotImplementedError(f"delete {module}")

    async def do(self, module: ModuleID, role, action: Action, *args, data=None, **kwargs):
        if action == Action.get_client_token:
            if not STATE.post_results:
                return "a-token-evflex-never-issued"
            party = STATE.parties.get(kwargs["auth_token"])
            return party["ours"] if party else None
        if action == Action.send_update_charging_profile:
            session = kwargs["session"]
            STATE.profiles.append((session["id"], args[0] if args else data))
            return dict(STATE.profile_answer)
        if action == Action.send_delete_chargingprofile:
            STATE.cleared.append(kwargs["session"]["id"])
            return dict(STATE.profile_answer)
        if action == Action.send_get_chargingprofile:
            STATE.active_queries.append(
                (kwargs["session"]["id"], kwargs["duration"], kwargs["response_url"])
            )
            return dict(STATE.profile_answer)
        raise NotImplementedError(f"do {action}")


class SchemaAdapter:
    """Every object the CPO answers or pushes is built and serialised by the library's schema
    classes."""

    @staticmethod
    def credentials_adapter(data, version=VersionNumber.v_2_2_1):
        return Credentials(**data)

    @staticmethod
    def token_adapter(data, version=VersionNumber.v_2_2_1):
        return Token(**data)

    @staticmethod
    def authorization_adapter(data, version=VersionNumber.v_2_2_1):
        return AuthorizationInfo(**data)

    @staticmethod
    def location_adapter(data, version=VersionNumber.v_2_2_1):
        return Location(**data)

    @staticmethod
    def session_adapter(data, version=VersionNumber.v_2_2_1):
        return Session(**data)

    @staticmethod
    def cdr_adapter(data, version=VersionNumber.v_2_2_1):
        return Cdr(**data)

    @staticmethod
    def charging_profile_response_adapter(data, version=VersionNumber.v_2_2_1):
        return ChargingProfileResponse(**data)

    @staticmethod
    def active_charging_profile_result_adapter(data, version=VersionNumber.v_2_2_1):
        if "profile" in data:
            return ActiveChargingProfileResult(**data)
        return ChargingProfileResult(**data)


# --- recording ---------------------------------------------------------------------------------


async def _record_validation_error(request: Request, exc: RequestValidationError):
    ex = request.scope.get("ocpi_peer_exchange")
    if ex is not None:
        ex.validation_errors = exc.errors()
    return await request_validation_exception_handler(request, exc)


class Recorder:
    """ASGI wrapper: records each HTTP request and the library's answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        ex = Exchange(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        scope["ocpi_peer_exchange"] = ex
        with STATE.lock:
            STATE.exchanges.append(ex)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        answer = []

        async def capture(message):
            if message["type"] == "http.response.start":
                ex.status = message["status"]
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
                if not message.get("more_body"):
                    try:
                        ex.response = json.loads(b"".join(answer) or b"null")
                    except ValueError:
                        ex.response = b"".join(answer).decode(errors="replace")
                    ex.done = True
            await send(message)

        await self.app(scope, replay, capture)


class _RecordingClient(httpx.AsyncClient):
    """The library's background tasks post results to evflex with `httpx.AsyncClient`; this
    records each of those calls and evflex's answer."""

    async def post(self, url, *args, **kwargs):
        response = await super().post(url, *args, **kwargs)
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        with STATE.lock:
            STATE.outbound.append(Outbound("POST", str(url), kwargs.get("json"), response.status_code, answer))
        return response


class _HttpxShim:
    AsyncClient = _RecordingClient


background_tasks.httpx = _HttpxShim
# The library's PUT background task waits for the Charge Point's result with
# `for _ in range(30 * GET_ACTIVE_PROFILE_AWAIT_TIME): … await sleep(2)` and only reports a
# result it got after the whole loop (background_tasks.send_update_chargingprofile): 5 minutes
# with the default setting. Only the waiting is shortened here; the logic is the library's.
background_tasks.sleep = lambda _s: asyncio.sleep(0)


class lowercase_cistrings:
    """`with lowercase_cistrings(): ...`: the library's default CiString handling (lower case)."""

    def __enter__(self):
        self.before = settings.CI_STRING_LOWERCASE_PREFERENCE
        settings.CI_STRING_LOWERCASE_PREFERENCE = True
        return self

    def __exit__(self, *exc):
        settings.CI_STRING_LOWERCASE_PREFERENCE = self.before
        return False


def build_app():
    app = get_application(
        version_numbers=[VersionNumber.v_2_2_1],
        roles=[RoleEnum.cpo],
        crud=MemoryCrud(),
        modules=[
            ModuleID.credentials_and_registration,
            ModuleID.locations,
            ModuleID.sessions,
            ModuleID.cdrs,
            ModuleID.tokens,
            ModuleID.charging_profile,
        ],
        authenticator=MemoryAuthenticator,
        adapter=SchemaAdapter,
    )
    app.add_exception_handler(RequestValidationError, _record_validation_error)
    return Recorder(app)


class CpoServer:
    """The library's app under uvicorn on 127.0.0.1:PORT, in a thread."""

    def __init__(self):
        config = uvicorn.Config(build_app(), host="127.0.0.1", port=PORT, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "CpoServer":
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("the extrawest-ocpi CPO did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def envelope_errors(body) -> list:
    """The library's OCPIResponse errors of an evflex answer ([] when it validates)."""
    from pydantic import ValidationError

    try:
        OCPIResponse.parse_obj(body)
        return []
    except ValidationError as e:
        return e.errors()
