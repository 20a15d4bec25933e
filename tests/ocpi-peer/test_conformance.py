"""OCPI 2.2.1 conformance of evflex against extrawest-ocpi, an implementation no one here wrote.

The real `evflex serve` (simulated clock, SQLite, no chain) talks to a CPO built on the
library's FastAPI server (tests/ocpi-peer/cpo.py). Every request evflex makes to the CPO is
parsed by the library's own routers and pydantic schemas (and recorded); every object the CPO
sends evflex is built and serialised by the library's schema classes; every answer evflex gives
is validated with the library's response envelope (`OCPIResponse`) and the module's schema.

Two onboarding directions, each against a fresh evflex:

- `TestCpoRegistersWithEvflex`: `evflex parties create-token-a`, the CPO reads evflex's versions
  and POSTs its credentials (then GET, and PUT with a new token); then the whole flow: the
  user's Token pushed to the CPO (and listed by evflex's Tokens sender), Location PUT and GET,
  CiStrings in lower case (ids, and the user's token uid as the library stores it), Session
  PUT, PATCH and GET, a charging request, a tick, evflex's ChargingProfile PUT (its limits and
  energy checked; the library's ChargingProfileResult back), the ActiveChargingProfile GET of
  a profile whose result never came (and the library's result back), CDR POST and GET, the
  ClearProfile DELETE of a no-longer-curtailed session of a user who did not opt in, and last
  the credentials DELETE.
- `TestEvflexRegistersWithCpo`: the CPO issues a token A, `evflex parties register`; evflex then
  calls the CPO with the token the CPO answered, and the CPO calls evflex with its own.

A first test, without evflex, shows that the CPO records a request the library refuses.

Where the library's schemas contradict OCPI 2.2.1 itself, cpo.SPEC_CORRECTIONS replaces exactly
those fields by the specification's; each use is checked: the body must fail the library's
schema as shipped at those fields only (`assert_only_library_deviations`).
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

import cpo  # first: sets the library's settings, then imports it
from py_ocpi.core.enums import ModuleID
from py_ocpi.core.push import request_data
from py_ocpi.modules.cdrs.v_2_2_1.schemas import Cdr, CdrToken
from py_ocpi.modules.chargingprofiles.v_2_2_1.schemas import (
    ChargingProfileResponse,
    SetChargingProfile,
)
from py_ocpi.modules.credentials.v_2_2_1.schemas import Credentials
from py_ocpi.modules.locations.v_2_2_1.schemas import Location
from py_ocpi.modules.sessions.v_2_2_1.schemas import Session, SessionPartialUpdate
from py_ocpi.modules.tokens.v_2_2_1.schemas import Token
from py_ocpi.modules.versions.enums import VersionNumber
from py_ocpi.modules.versions.schemas import Version
from py_ocpi.modules.versions.v_2_2_1.schemas import VersionDetail

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = os.environ.get("EVFLEX_BIN") or str(
    Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/evflex/target") / "debug/evflex"
)
# 2026-06-01T06:00:00Z, a quarter-hour boundary: the simulated clock's start.
NOW = 1780293600
STEP = 900
OPERATOR_TOKEN = "ocpi-peer-operator-token"
CONNECTOR_W, CONNECTOR_A = 11_000, 16
V221 = VersionNumber.v_2_2_1

# Where the run met each library deviation from the specification (printed by conftest.py).
DEVIATIONS_SEEN: dict[str, set[str]] = {}


def met(deviation: str, where: str) -> None:
    DEVIATIONS_SEEN.setdefault(deviation, set()).add(where)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def settled_count(items, quiet=0.6, timeout=15.0):
    """How many `items()` there are once no new one has come for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    n = len(items())
    while time.monotonic() < deadline:
        time.sleep(quiet)
        m = len(items())
        if m == n:
            return n
        n = m
    return n


def wait_for(what: str, predicate, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- the library's verdicts -------------------------------------------------------------------


def library_errors(model, value, *, shipped: bool = False) -> list:
    """The library schema's validation errors of `value` ([] when it validates); `shipped`
    validates without cpo.SPEC_CORRECTIONS."""
    try:
        if shipped:
            with cpo.uncorrected():
                model.parse_obj(value)
        else:
            model.parse_obj(value)
        return []
    except ValidationError as e:
        return e.errors()


def assert_only_library_deviations(model, value, what: str) -> None:
    """`value` passes `model` as corrected; as shipped, it may fail only at corrected fields."""
    errors = library_errors(model, value)
    assert not errors, f"{what}: the library's {model.__name__} refuses it: {errors}\n{value}"
    corrected = {(c.model.__name__, c.library_field) for c in cpo.SPEC_CORRECTIONS}
    for e in library_errors(model, value, shipped=True):
        names = set(e["loc"])
        hits = [f for (m, f) in corrected if f and f in names]
        assert hits, (
            f"{what}: the library's {model.__name__} (as shipped) refuses it at {e['loc']} "
            f"({e['msg']}), which is no known deviation of the library from OCPI 2.2.1\n{value}"
        )
        for c in cpo.SPEC_CORRECTIONS:
            if c.library_field and c.library_field in hits:
                met(f"{c.model.__name__}.{c.library_field}", what)


def check_answer(resp: httpx.Response, what: str, data_model=None, *, many: bool = False,
                 http=(200, 201), status_code: int = 1000):
    """An evflex answer: the HTTP status, the library's OCPIResponse envelope, the OCPI status
    and, when given, `data` as the module's schema (a list of it with `many`). Returns data."""
    assert resp.status_code in http, f"{what}: HTTP {resp.status_code}: {resp.text}"
    body = resp.json()
    assert_only_library_deviations(cpo.OCPIResponse, body, what)
    assert body["status_code"] == status_code, f"{what}: OCPI {body}"
    data = body.get("data")
    if data_model is not None:
        assert data is not None, f"{what}: no data: {body}"
        items = data if many else [data]
        if many:
            assert isinstance(data, list), f"{what}: data is not a list: {body}"
        for item in items:
            assert_only_library_deviations(data_model, item, f"{what} (data)")
    return data


def check_versions(resp: httpx.Response, what: str) -> list:
    """evflex's version list: each version the library knows validates as its `Version`; a
    version it does not know (its VersionNumber enum ends at 2.2.1) must still be a
    {version, url} pair of strings: the library's own client skips it (credentials POST
    handler: `if version["version"] == VersionNumber.v_2_2_1`)."""
    versions = check_answer(resp, what)
    assert isinstance(versions, list) and versions, f"{what}: {versions}"
    known = {v.value for v in VersionNumber}
    for v in versions:
        if v.get("version") in known:
            assert_only_library_deviations(Version, v, f"{what} (data)")
        else:
            assert set(v) == {"version", "url"} and all(isinstance(x, str) for x in v.values()), v
            met(f"VersionNumber has no {v['version']} (evflex offers it; skipped, as the "
                f"library's own client does)", what)
    assert "2.2.1" in {v["version"] for v in versions}, versions
    return versions


def exchanges(method: str, fragment: str) -> list:
    """The requests evflex made to the CPO that the library has answered."""
    with cpo.STATE.lock:
        return [e for e in cpo.STATE.exchanges
                if e.done and e.method == method and fragment in e.path]


def assert_validated(ex: cpo.Exchange) -> None:
    assert ex.validated, (
        f"evflex's {ex} was refused by extrawest-ocpi {cpo.LIBRARY_VERSION}'s schemas: "
        f"{ex.validation_errors}\nbody: {ex.body}"
    )


def library_answer_ok(ex: cpo.Exchange) -> None:
    """The library's own answer to evflex's request was a success envelope."""
    assert ex.status == 200, f"{ex}: {ex.response}"
    assert ex.response.get("status_code") == 1000, f"{ex}: {ex.response}"


# --- evflex serve ------------------------------------------------------------------------------


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Evflex:
    """`evflex serve --sim-clock NOW --no-chain` on a fresh SQLite database."""

    def __init__(self, work: Path):
        self.work = work
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = work / "server.log"
        drop = ["EVFLEX_NO_CHAIN", "EVFLEX_RPC_URL", "EVFLEX_OPERATOR_KEY", "EVFLEX_METER_KEY",
                "EVFLEX_MASTER_SECRET", "EVFLEX_DEPLOYMENT", "EVFLEX_WRITER", "EVFLEX_TOPOLOGY",
                "EVFLEX_PRICES_CSV", "EVFLEX_NO_RATE_LIMITS", "EVFLEX_PUBLIC_URL", "EVFLEX_TICK",
                "DATABASE_URL"]
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update(
            DATABASE_URL=f"sqlite://{work}/evflex.sqlite?mode=rwc",
            EVFLEX_LISTEN=f"127.0.0.1:{self.port}",
            EVFLEX_PUBLIC_URL=self.base,
            EVFLEX_ALLOW_PRIVATE_URLS="1",  # the CPO listens on loopback
            EVFLEX_OPERATOR_TOKEN=OPERATOR_TOKEN,
            EVFLEX_WEB_DIR=str(ROOT / "backend/web"),
            EVFLEX_NO_RATE_LIMITS="1",
            EVFLEX_SETPOINT_ATTEMPTS="1",
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
            NO_COLOR="1",
        )
        self.proc = None

    def start(self) -> "Evflex":
        assert os.access(BIN, os.X_OK), f"{BIN} not found: cargo build --workspace first"
        self.proc = subprocess.Popen(
            [BIN, "serve", "--sim-clock", str(NOW), "--no-chain"],
            cwd=self.work, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"evflex exited at start:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"evflex did not answer /healthz within 60 s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(self.env, RUST_BACKTRACE="0")
        return subprocess.run([BIN, *args], cwd=self.work, env=env, capture_output=True,
                              text=True, timeout=60)

    def call(self, method: str, path: str, *, ocpi: str | None = None, bearer: str | None = None,
             json=None) -> httpx.Response:
        headers = {}
        if ocpi:
            headers["Authorization"] = f"Token {b64(ocpi)}"
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        url = path if path.startswith("http") else f"{self.base}{path}"
        return httpx.request(method, url, headers=headers, json=json, timeout=30)

    def api(self, method: str, path: str, **kw):
        """evflex's own JSON API (not OCPI): 2xx expected, the JSON body returned."""
        r = self.call(method, path, **kw)
        assert 200 <= r.status_code < 300, f"{method} {path}: HTTP {r.status_code} {r.text}"
        return r.json() if r.content else None

    def set_clock(self, now: int) -> None:
        self.api("PUT", "/api/v1/operator/clock", bearer=OPERATOR_TOKEN, json={"now": now})

    def tick(self) -> dict:
        return self.api("POST", "/api/v1/operator/tick", bearer=OPERATOR_TOKEN, json={})

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


@pytest.fixture(scope="session")
def cpo_server():
    server = cpo.CpoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="class")
def evflex(cpo_server, tmp_path_factory):
    cpo.reset()
    server = Evflex(tmp_path_factory.mktemp("evflex")).start()
    yield server
    server.stop()


class World:
    """What one flow learnt so far (tests of a class run in order)."""


@pytest.fixture(scope="class")
def world():
    return World()


def require(world, *names):
    missing = [n for n in names if not hasattr(world, n)]
    if missing:
        pytest.fail(f"an earlier step failed: no {', '.join(missing)}")
    return [getattr(world, n) for n in names]


# --- the CPO's objects, built by the library's schema classes ---------------------------------


def location(at: str, id: str = "LOC-1", evses=("EVSE-1", "EVSE-2")) -> dict:
    obj = {
        "country_code": cpo.COUNTRY, "party_id": cpo.PARTY, "id": id, "publish": True,
        "name": "Garage A", "address": "Stationsplein 1", "city": "Utrecht",
        "postal_code": "3511 ED", "country": "NLD",
        "coordinates": {"latitude": "52.089", "longitude": "5.110"},
        "time_zone": "Europe/Amsterdam", "last_updated": at,
        "evses": [
            {
                "uid": uid, "evse_id": f"NL*EXA*E{uid[-1]}", "status": status, "last_updated": at,
                "capabilities": ["REMOTE_START_STOP_CAPABLE"],
                "connectors": [{
                    "id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
                    "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": CONNECTOR_A,
                    "max_electric_power": CONNECTOR_W, "last_updated": at,
                }],
            }
            for uid, status in zip(evses, ("CHARGING", "AVAILABLE", "AVAILABLE"))
        ],
    }
    return request_data(ModuleID.locations, obj, cpo.SchemaAdapter, V221)


def cdr_token(uid: str) -> dict:
    return {"country_code": "NL", "party_id": "EVF", "uid": uid, "type": "APP_USER",
            "contract_id": f"NL-EVF-{uid}"}


def session(uid: str, status: str, at: str, **fields) -> dict:
    obj = {
        "country_code": cpo.COUNTRY, "party_id": cpo.PARTY, "id": "S-1",
        "start_date_time": iso(NOW - 20 * 60), "kwh": 1.2, "cdr_token": cdr_token(uid),
        "auth_method": "COMMAND", "location_id": "LOC-1", "evse_uid": "EVSE-1",
        "connector_id": "1", "currency": "EUR", "status": status, "last_updated": at,
    }
    obj.update(fields)
    return request_data(ModuleID.sessions, obj, cpo.SchemaAdapter, V221)


def cdr(uid: str, start: int, end: int) -> dict:
    obj = {
        "country_code": cpo.COUNTRY, "party_id": cpo.PARTY, "id": "CDR-1",
        "start_date_time": iso(start), "end_date_time": iso(end), "session_id": "S-1",
        "cdr_token": cdr_token(uid), "auth_method": "COMMAND",
        "cdr_location": {
            "id": "LOC-1", "name": "Garage A", "address": "Stationsplein 1", "city": "Utrecht",
            "postal_code": "3511 ED", "country": "NLD",
            "coordinates": {"latitude": "52.089", "longitude": "5.110"},
            "evse_uid": "EVSE-1", "evse_id": "NL*EXA*E1", "connector_id": "1", "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [{"start_date_time": iso(start),
                              "dimensions": [{"type": "ENERGY", "volume": 6.5}]}],
        "total_cost": {"excl_vat": 2.10, "incl_vat": 2.54}, "total_energy": 6.5,
        "total_time": (end - start) / 3600, "last_updated": iso(end),
    }
    return request_data(ModuleID.cdrs, obj, cpo.SchemaAdapter, V221)


def endpoint(details: dict, identifier: str, role: str) -> str:
    for e in details["endpoints"]:
        if e["identifier"] == identifier and e["role"] == role:
            return e["url"]
    raise AssertionError(f"evflex offers no {identifier} {role}: {details}")


def assert_profile_sane(body: dict, evflex_base: str) -> None:
    """A SetChargingProfile evflex sent: the unit's limits within the connector's."""
    profile = body["charging_profile"]
    assert body["response_url"].startswith(f"{evflex_base}/ocpi/2.2.1/chargingprofiles/"), body
    unit = profile["charging_rate_unit"]
    assert unit in ("W", "A"), body
    periods = profile["charging_profile_period"]
    assert isinstance(periods, list) and periods, f"no periods: {body}"
    top = CONNECTOR_W if unit == "W" else CONNECTOR_A
    starts = [p["start_period"] for p in periods]
    assert starts[0] == 0 and starts == sorted(set(starts)), f"periods out of order: {body}"
    for p in periods:
        assert 0 <= p["limit"] <= top, f"limit {p['limit']} {unit} outside 0..{top}: {body}"
    if profile.get("min_charging_rate") is not None:
        assert 0 <= profile["min_charging_rate"] <= top, body


def planned_wh(body: dict, until_s: int) -> float:
    """The energy a W profile allows over its first `until_s` seconds (Wh)."""
    periods = body["charging_profile"]["charging_profile_period"]
    bounds = [p["start_period"] for p in periods[1:]] + [until_s]
    return sum(p["limit"] * max(0, min(end, until_s) - p["start_period"]) / 3600
               for p, end in zip(periods, bounds))


# --- the harness can fail ----------------------------------------------------------------------


def test_the_cpo_records_what_the_library_refuses(cpo_server):
    """Without evflex: a ChargingProfile PUT the library's schema refuses (unknown
    charging_rate_unit, a period without limit) is recorded as not validated, with the
    library's errors, so the checks on evflex's requests can fail."""
    cpo.reset()
    token = secrets.token_hex(8)
    cpo.STATE.tokens_c.add(token)
    cpo.STATE.sessions["S-9"] = {"id": "S-9"}
    bad = {"charging_profile": {"charging_rate_unit": "kW",
                                "charging_profile_period": [{"start_period": 0}]},
           "response_url": "http://127.0.0.1:9/ocpi/2.2.1/chargingprofiles/1"}
    r = httpx.put(f"{cpo.BASE}/ocpi/cpo/2.2.1/chargingprofiles/S-9", json=bad,
                  headers={"Authorization": f"Token {b64(token)}"})
    assert r.status_code == 422, r.text
    (ex,) = exchanges("PUT", "/chargingprofiles/S-9")
    assert not ex.validated
    locs = {e["loc"] for e in ex.validation_errors}
    assert ("body", "charging_profile", "charging_rate_unit") in locs, locs
    assert ("body", "charging_profile", "charging_profile_period", 0, "limit") in locs, locs
    with pytest.raises(AssertionError):
        assert_validated(ex)
    cpo.reset()


# --- direction 1: the CPO registers with evflex -----------------------------------------------


@pytest.mark.usefixtures("evflex")
class TestCpoRegistersWithEvflex:
    def test_versions_with_token_a(self, evflex, world):
        out = evflex.cli("parties", "create-token-a")
        assert out.returncode == 0, out.stderr
        world.token_a = out.stdout.strip().splitlines()[-1]
        versions = check_versions(evflex.call("GET", "/ocpi/versions", ocpi=world.token_a),
                                  "GET /ocpi/versions")
        url = next(v["url"] for v in versions if v["version"] == "2.2.1")
        assert url == f"{evflex.base}/ocpi/2.2.1"
        world.details = check_answer(evflex.call("GET", url, ocpi=world.token_a),
                                     "GET /ocpi/2.2.1", VersionDetail)
        assert world.details["version"] == "2.2.1"
        for e in world.details["endpoints"]:
            assert e["url"].startswith(f"{evflex.base}/ocpi/2.2.1/"), e
        endpoint(world.details, "credentials", "RECEIVER")

    def test_credentials_post(self, evflex, world):
        token_a, details = require(world, "token_a", "details")
        token_b = secrets.token_hex(16)  # what evflex presents to the CPO
        cpo.STATE.tokens_c.add(token_b)
        body = cpo.SchemaAdapter.credentials_adapter(cpo._our_credentials(token_b)).dict()
        ours = check_answer(
            evflex.call("POST", endpoint(details, "credentials", "RECEIVER"), ocpi=token_a, json=body),
            "POST /ocpi/2.2.1/credentials", Credentials)
        world.token_c = ours["token"]
        assert ours["url"] == f"{evflex.base}/ocpi/versions"
        assert {r["role"] for r in ours["roles"]} >= {"EMSP"}, ours
        cpo.STATE.parties[token_b] = {"credentials": ours, "endpoints": details["endpoints"],
                                      "ours": world.token_c, "ours_presented_by_them": token_b}
        # evflex read the CPO's versions and 2.2.1 endpoints with token B, through the library.
        for path in ("/ocpi/versions", "/ocpi/2.2.1/details"):
            got = exchanges("GET", path)
            assert got, f"evflex never called the CPO's {path}"
            for ex in got:
                assert_validated(ex)
                library_answer_ok(ex)
                assert ex.headers.get("authorization") == f"Token {b64(token_b)}", ex.headers
        # Token A is used up.
        r = evflex.call("GET", "/ocpi/versions", ocpi=token_a)
        assert r.status_code == 401, f"token A still works after the POST: {r.status_code}"
        check_answer(r, "GET /ocpi/versions with a spent token A", http=(401,), status_code=2000)

    def test_credentials_get(self, evflex, world):
        (token_c,) = require(world, "token_c")
        ours = check_answer(evflex.call("GET", "/ocpi/2.2.1/credentials", ocpi=token_c),
                            "GET /ocpi/2.2.1/credentials", Credentials)
        assert ours["token"] == token_c

    def test_credentials_put(self, evflex, world):
        """The CPO updates its credentials (new token B'): evflex reads its endpoints with B'
        and answers a new token C; the old token C stops working."""
        token_c, details = require(world, "token_c", "details")
        token_b2 = secrets.token_hex(16)
        cpo.STATE.tokens_c.add(token_b2)
        before = len(exchanges("GET", "/ocpi/versions"))
        body = cpo.SchemaAdapter.credentials_adapter(cpo._our_credentials(token_b2)).dict()
        ours = check_answer(
            evflex.call("PUT", endpoint(details, "credentials", "RECEIVER"), ocpi=token_c, json=body),
            "PUT /ocpi/2.2.1/credentials", Credentials)
        assert ours["token"] != token_c, ours
        again = exchanges("GET", "/ocpi/versions")[before:]
        assert again and all(e.headers.get("authorization") == f"Token {b64(token_b2)}" for e in again), again
        for ex in again:
            assert_validated(ex)
        old_party = cpo.STATE.parties.pop(next(iter(cpo.STATE.parties)))
        cpo.STATE.parties[token_b2] = dict(old_party, ours=ours["token"], ours_presented_by_them=token_b2)
        world.token_c = ours["token"]
        # evflex's token cache may hold the old token C for up to 10 s (README): wait it out.
        wait_for("the old token C to stop working",
                 lambda: evflex.call("GET", "/ocpi/2.2.1/credentials", ocpi=token_c).status_code == 401,
                 timeout=15)

    def test_user_token_pushed(self, evflex, world):
        require(world, "token_c")
        user = evflex.api("POST", "/api/v1/users", json={"name": "OCPI peer driver", "opted_in": True})
        world.user = user
        uid = user["token_uid"]
        ex = wait_for(f"evflex's Token PUT for {uid}", lambda: [
            e for e in exchanges("PUT", "/ocpi/cpo/2.2.1/tokens/") if e.path.upper().endswith(uid)])[-1]
        assert_validated(ex)
        library_answer_ok(ex)
        token = ex.body
        assert token["uid"] == uid and token["type"] == "APP_USER" and token["valid"] is True, token
        assert_only_library_deviations(Token, token, "evflex's Token PUT")
        # OCPI 2.2.1 mod_tokens: PUT {url}/{country_code}/{party_id}/{token_uid}[?type={type}]
        assert ex.path.upper().endswith(f"/{token['country_code']}/{token['party_id']}/{uid}".upper())
        assert "type=APP_USER" in ex.query, ex.query
        # evflex's Tokens SENDER interface (GET /tokens) lists it, each item a library Token.
        listed = check_answer(evflex.call("GET", endpoint(world.details, "tokens", "SENDER"),
                                          ocpi=world.token_c),
                              "GET /ocpi/2.2.1/tokens", Token, many=True)
        assert uid in {t["uid"] for t in listed}, listed

    def test_location_put_and_get(self, evflex, world):
        token_c, details = require(world, "token_c", "details")
        body = location(iso(NOW))
        url = f"{endpoint(details, 'locations', 'RECEIVER')}/{cpo.COUNTRY}/{cpo.PARTY}/LOC-1"
        check_answer(evflex.call("PUT", url, ocpi=token_c, json=body), "PUT location")
        got = check_answer(evflex.call("GET", url, ocpi=token_c), "GET location", Location)
        assert got["id"].upper() == "LOC-1" and len(got["evses"]) == 2, got
        world.locations_url = url

    def test_cistring_ids_in_any_case(self, evflex, world):
        """OCPI 2.2.1 types.asciidoc: CiString is a case-insensitive string. With its default
        setting the library lowercases every CiString of the objects it builds, while its push
        client puts the ids in the URL as given (core/push.py `client_url`): evflex must take
        `PUT /locations/NL/EXA/LOC-2` with `"country_code": "nl", "party_id": "exa", "id":
        "loc-2"`."""
        token_c, details = require(world, "token_c", "details")
        with cpo.lowercase_cistrings():
            body = location(iso(NOW), "LOC-2", ("EVSE-3",))
        assert (body["country_code"], body["party_id"], body["id"]) == ("nl", "exa", "loc-2"), body
        url = f"{endpoint(details, 'locations', 'RECEIVER')}/{cpo.COUNTRY}/{cpo.PARTY}/LOC-2"
        check_answer(evflex.call("PUT", url, ocpi=token_c, json=body), "PUT location with lower-case CiStrings")
        got = check_answer(evflex.call("GET", url, ocpi=token_c), "GET location LOC-2", Location)
        assert got["id"].upper() == "LOC-2", got

    def test_topology(self, evflex, world):
        token_c, _ = require(world, "token_c", "locations_url")
        evflex.api("PUT", "/api/v1/topology", ocpi=token_c, json={"groups": [{
            "id": 1, "name": "Garage A", "country_code": cpo.COUNTRY, "party_id": cpo.PARTY,
            "capacity_w": 22_000, "other_load_w": 2_000, "evses": ["EVSE-1", "EVSE-2"],
            "pv_inverters": [{"id": "roof", "peak_w": 10_000}]}]})

    def test_cistring_token_uid_in_any_case(self, evflex, world):
        """OCPI 2.2.1: Token.uid and CdrToken.uid are CiString(36). With its default setting
        the library stores the Token evflex pushes with its uid in lower case ("EVF0…" becomes
        "evf0…", as its answer to the Token PUT shows), so a CPO built on it reports the
        user's sessions with that uid. evflex must still know the session is the user's: the
        user's charging request for it is taken."""
        token_c, details = require(world, "token_c", "details")
        user = evflex.api("POST", "/api/v1/users", json={"name": "OCPI peer driver 3", "opted_in": True})
        uid = user["token_uid"]
        ex = wait_for(f"evflex's Token PUT for {uid}", lambda: [
            e for e in exchanges("PUT", "/ocpi/cpo/2.2.1/tokens/") if e.path.upper().endswith(uid)])[-1]
        with cpo.lowercase_cistrings():
            stored = cpo.SchemaAdapter.token_adapter(ex.body).dict()  # as the library keeps it
            token = CdrToken(country_code=stored["country_code"], party_id=stored["party_id"],
                             uid=stored["uid"], type=stored["type"],
                             contract_id=stored["contract_id"]).dict()
        assert token["uid"] == uid.lower(), token
        at = iso(NOW)
        url = f"{endpoint(details, 'sessions', 'RECEIVER')}/{cpo.COUNTRY}/{cpo.PARTY}/S-3"
        body = session(uid, "ACTIVE", at, id="S-3", evse_uid="EVSE-2")
        body["cdr_token"] = token
        check_answer(evflex.call("PUT", url, ocpi=token_c, json=body), "PUT session S-3 (lower-case uid)")
        try:
            r = evflex.call("POST", "/api/v1/requests", bearer=user["token"], json={
                "session_id": "S-3", "energy_kwh": 5, "departure": iso(NOW + 4 * 3600)})
            assert r.status_code in (200, 201) and r.json().get("decision") in ("accepted", "rejected"), (
                f"evflex did not give the user the session the CPO reported with cdr_token.uid "
                f"{token['uid']!r} (the user's {uid!r} in lower case): POST /api/v1/requests: "
                f"HTTP {r.status_code} {r.text}")
        finally:
            done = session(uid, "COMPLETED", at, id="S-3", evse_uid="EVSE-2", end_date_time=at)
            done["cdr_token"] = token
            check_answer(evflex.call("PUT", url, ocpi=token_c, json=done), "PUT session S-3 (COMPLETED)")

    def test_session_put_patch_get(self, evflex, world):
        token_c, details, user = require(world, "token_c", "details", "user")
        url = f"{endpoint(details, 'sessions', 'RECEIVER')}/{cpo.COUNTRY}/{cpo.PARTY}/S-1"
        body = session(user["token_uid"], "ACTIVE", iso(NOW))
        check_answer(evflex.call("PUT", url, ocpi=token_c, json=body), "PUT session")
        cpo.STATE.sessions["S-1"] = body  # the CPO's own session (chargingprofiles look it up)
        patch = SessionPartialUpdate(kwh=2.4, last_updated=iso(NOW)).dict(exclude_unset=True)
        check_answer(evflex.call("PATCH", url, ocpi=token_c, json=patch), "PATCH session")
        got = check_answer(evflex.call("GET", url, ocpi=token_c), "GET session", Session)
        assert float(got["kwh"]) == 2.4, got
        assert got["cdr_token"]["uid"].upper() == user["token_uid"], got
        world.sessions_url = url

    def test_request_and_charging_profile_put(self, evflex, world):
        token_c, user, _ = require(world, "token_c", "user", "sessions_url")
        at = iso(NOW)
        evflex.api("POST", "/api/v1/meter-values", ocpi=token_c, json={"meter_values": [{
            "evse_uid": "EVSE-1", "session_id": "S-1", "meterValue": [{"timestamp": at, "sampledValue": [
                {"measurand": "Energy.Active.Import.Register", "value": "2400", "unit": "Wh"},
                {"measurand": "Power.Active.Import", "value": "7.4", "unit": "kW"},
                {"measurand": "SoC", "value": "41", "unit": "Percent"}]}]}]})
        decision = evflex.api("POST", "/api/v1/requests", bearer=user["token"], json={
            "session_id": "S-1", "energy_kwh": 10, "departure": iso(NOW + 4 * 3600)})
        assert decision["decision"] == "accepted", decision
        report = evflex.tick()
        ex = wait_for("evflex's ChargingProfile PUT", lambda: exchanges("PUT", "/ocpi/cpo/2.2.1/chargingprofiles/"))[-1]
        assert_validated(ex)
        library_answer_ok(ex)
        assert ex.path.upper().endswith("/S-1"), ex
        assert_only_library_deviations(SetChargingProfile, ex.body, "evflex's ChargingProfile PUT")
        assert_profile_sane(ex.body, evflex.base)
        # The request: 10 kWh by the departure 4 h from now, on an 11 kW connector, in a group
        # with room for it: the profile must allow that much, and start charging now.
        profile = ex.body["charging_profile"]
        assert profile["charging_rate_unit"] == "W", ex.body
        assert profile["charging_profile_period"][0]["limit"] > 0, ex.body
        wh = planned_wh(ex.body, 4 * 3600)
        assert 0.95 * 10_000 <= wh <= CONNECTOR_W * 4, f"{wh:.0f} Wh planned by the departure: {ex.body}"
        # The library answers a list of one ChargingProfileResponse (OCPI: the object itself).
        for item in ex.response["data"] if isinstance(ex.response["data"], list) else [ex.response["data"]]:
            ChargingProfileResponse.parse_obj(item)
        # The accepted request re-planned its group at once and sent the profile above; the
        # tick then finds the timestep committed by that re-plan (or plans it itself).
        assert report["groups"] and all(
            g["outcome"] == "solved" or g.get("skip", {}).get("reason") == "committed"
            for g in report["groups"]), report
        # The library's background task posts the Charge Point's ChargingProfileResult to
        # evflex's response_url with the token evflex gave the CPO.
        out = wait_for("the library's ChargingProfileResult POST",
                       lambda: [o for o in cpo.STATE.outbound if o.url == ex.body["response_url"]])[-1]
        assert out.status == 200, f"evflex answered the result with HTTP {out.status}: {out.response}"
        check_answer(_Fake(out), "evflex's answer to the ChargingProfileResult POST")
        world.first_profile = ex

    def test_active_charging_profile_get(self, evflex, world):
        """A profile whose result never reaches evflex is overdue after its timeout: evflex asks
        the CPO for the profile in force (GET with duration and response_url)."""
        require(world, "first_profile")
        # Event re-plans may have sent more than one profile already, and evflex's re-plan
        # worker may still be sending one (the session's start, the request, the meter value
        # showing a 7.4 kW car on an 11 kW connector): the next one is the one after those.
        sent_before = settled_count(lambda: exchanges("PUT", "/ocpi/cpo/2.2.1/chargingprofiles/"))
        cpo.STATE.post_results = False  # the next result goes out with a token evflex refuses
        evflex.set_clock(NOW + STEP)
        evflex.tick()
        second = wait_for("a further ChargingProfile PUT",
                          lambda: exchanges("PUT", "/ocpi/cpo/2.2.1/chargingprofiles/")[sent_before:])[-1]
        assert_validated(second)
        assert_only_library_deviations(SetChargingProfile, second.body, "evflex's second ChargingProfile PUT")
        assert_profile_sane(second.body, evflex.base)
        refused = wait_for("the result posted with an unknown token",
                           lambda: [o for o in cpo.STATE.outbound if o.url == second.body["response_url"]])[-1]
        assert refused.status == 401, f"evflex took a result with an unknown token: {refused.status}"
        cpo.STATE.post_results = True
        evflex.set_clock(NOW + 2 * STEP)
        evflex.tick()
        gets = wait_for("evflex's ActiveChargingProfile GET",
                        lambda: exchanges("GET", "/ocpi/cpo/2.2.1/chargingprofiles/"), timeout=10)
        ex = gets[-1]
        assert_validated(ex)
        library_answer_ok(ex)
        params = dict(p.split("=", 1) for p in ex.query.split("&"))
        assert int(params["duration"]) > 0, ex.query
        assert params["response_url"].startswith(f"{evflex.base}/ocpi/2.2.1/chargingprofiles/"), ex.query
        out = wait_for("the library's ActiveChargingProfileResult POST",
                       lambda: [o for o in cpo.STATE.outbound if o.url == params["response_url"]])[-1]
        assert out.status == 200, f"evflex answered the active profile with HTTP {out.status}: {out.response}"
        check_answer(_Fake(out), "evflex's answer to the ActiveChargingProfileResult POST")

    def test_cdr_post(self, evflex, world):
        token_c, details, user, sessions_url = require(world, "token_c", "details", "user", "sessions_url")
        end = NOW + 2 * STEP
        done = session(user["token_uid"], "COMPLETED", iso(end), end_date_time=iso(end), kwh=6.5)
        check_answer(evflex.call("PUT", sessions_url, ocpi=token_c, json=done), "PUT session (COMPLETED)")
        r = evflex.call("POST", endpoint(details, "cdrs", "RECEIVER"), ocpi=token_c,
                        json=cdr(user["token_uid"], NOW - 20 * 60, end))
        check_answer(r, "POST cdr", http=(201,))
        where = r.headers.get("location")
        assert where and where.startswith(f"{evflex.base}/ocpi/2.2.1/cdrs/"), r.headers
        got = check_answer(evflex.call("GET", where, ocpi=token_c), "GET cdr", Cdr)
        assert got["id"].upper() == "CDR-1", got

    def test_clear_profile_delete(self, evflex, world):
        """A session of a user who did not opt in gets a profile only while the group's capacity
        curtails it; when it no longer does, evflex clears it: DELETE with a response_url
        (OCPI ClearProfile), which the library parses; the library's ClearProfileResult then
        reaches evflex."""
        token_c, details, _ = require(world, "token_c", "details", "sessions_url")
        user = evflex.api("POST", "/api/v1/users", json={"name": "OCPI peer driver (not opted in)",
                                                          "opted_in": False})
        topology = lambda capacity_w: {"groups": [{  # noqa: E731
            "id": 1, "name": "Garage A", "country_code": cpo.COUNTRY, "party_id": cpo.PARTY,
            "capacity_w": capacity_w, "other_load_w": 2_000, "evses": ["EVSE-1", "EVSE-2"],
            "pv_inverters": []}]}
        evflex.api("PUT", "/api/v1/topology", ocpi=token_c, json=topology(6_000))
        start = NOW + 2 * STEP
        url = f"{endpoint(details, 'sessions', 'RECEIVER')}/{cpo.COUNTRY}/{cpo.PARTY}/S-2"
        body = session(user["token_uid"], "ACTIVE", iso(start), id="S-2", evse_uid="EVSE-2",
                       start_date_time=iso(start), kwh=0.1)
        check_answer(evflex.call("PUT", url, ocpi=token_c, json=body), "PUT session S-2")
        cpo.STATE.sessions["S-2"] = body
        evflex.api("POST", "/api/v1/meter-values", ocpi=token_c, json={"meter_values": [{
            "evse_uid": "EVSE-2", "session_id": "S-2", "meterValue": [{"timestamp": iso(start), "sampledValue": [
                {"measurand": "Energy.Active.Import.Register", "value": "100", "unit": "Wh"},
                {"measurand": "Power.Active.Import", "value": "11", "unit": "kW"}]}]}]})
        evflex.set_clock(start + STEP)
        evflex.tick()
        put = wait_for("a ChargingProfile PUT for the curtailed session S-2", lambda: [
            e for e in exchanges("PUT", "/ocpi/cpo/2.2.1/chargingprofiles/") if e.path.upper().endswith("/S-2")])[-1]
        assert_validated(put)
        assert_only_library_deviations(SetChargingProfile, put.body, "evflex's ChargingProfile PUT (curtailed)")
        assert_profile_sane(put.body, evflex.base)
        assert min(p["limit"] for p in put.body["charging_profile"]["charging_profile_period"]) < CONNECTOR_W, put.body
        evflex.api("PUT", "/api/v1/topology", ocpi=token_c, json=topology(60_000))
        evflex.set_clock(start + 2 * STEP)
        evflex.tick()
        ex = wait_for("evflex's ClearProfile DELETE for S-2", lambda: [
            e for e in exchanges("DELETE", "/ocpi/cpo/2.2.1/chargingprofiles/") if e.path.upper().endswith("/S-2")])[-1]
        assert_validated(ex)
        library_answer_ok(ex)
        params = dict(p.split("=", 1) for p in ex.query.split("&"))
        assert set(params) == {"response_url"}, ex.query
        assert params["response_url"].startswith(f"{evflex.base}/ocpi/2.2.1/chargingprofiles/"), ex.query
        out = wait_for("the library's ClearProfileResult POST",
                       lambda: [o for o in cpo.STATE.outbound if o.url == params["response_url"]])[-1]
        assert out.status == 200, f"evflex answered the ClearProfileResult with HTTP {out.status}: {out.response}"
        check_answer(_Fake(out), "evflex's answer to the ClearProfileResult POST")

    def test_every_request_evflex_made_was_valid(self):
        with cpo.STATE.lock:
            seen = [e for e in cpo.STATE.exchanges if e.done]
        assert seen, "evflex made no request to the CPO"
        bad = [f"{e}: {e.validation_errors}" for e in seen if not e.validated]
        assert not bad, "refused by the library: " + "; ".join(bad)
        kinds = {(e.method, e.path.split("/")[4] if e.path.startswith("/ocpi/cpo/") else e.path) for e in seen}
        for kind in [("GET", "/ocpi/versions"), ("GET", "/ocpi/2.2.1/details"), ("PUT", "tokens"),
                     ("PUT", "chargingprofiles"), ("GET", "chargingprofiles"),
                     ("DELETE", "chargingprofiles")]:
            assert kind in kinds, f"evflex never made {kind}: {sorted(kinds)}"


    def test_credentials_delete(self, evflex, world):
        """Last: the CPO unregisters; its token C stops working."""
        token_c, details = require(world, "token_c", "details")
        check_answer(evflex.call("DELETE", endpoint(details, "credentials", "RECEIVER"), ocpi=token_c),
                     "DELETE /ocpi/2.2.1/credentials")
        wait_for("token C to stop working after the DELETE",
                 lambda: evflex.call("GET", "/ocpi/2.2.1/credentials", ocpi=token_c).status_code == 401,
                 timeout=15)


class _Fake:
    """An evflex answer the library's background task got, as check_answer reads one."""

    def __init__(self, out: cpo.Outbound):
        self.status_code = out.status
        self._body = out.response
        self.text = str(out.response)

    def json(self):
        return self._body


# --- direction 2: evflex registers with the CPO -----------------------------------------------


@pytest.mark.usefixtures("evflex")
class TestEvflexRegistersWithCpo:
    def test_parties_register(self, evflex, world):
        token_a = cpo.new_token_a()
        out = evflex.cli("parties", "register", "--versions-url", f"{cpo.BASE}/ocpi/versions",
                         "--token-a", token_a, "--public-url", evflex.base, "--allow-private-urls")
        posts = exchanges("POST", "/ocpi/cpo/2.2.1/credentials")
        for ex in exchanges("GET", "/ocpi/"):
            assert_validated(ex)
            assert ex.headers.get("authorization") == f"Token {b64(token_a)}", ex
        assert posts, f"evflex never POSTed its credentials: {out.stdout}{out.stderr}"
        ex = posts[-1]
        assert_validated(ex)
        assert_only_library_deviations(Credentials, ex.body, "evflex's credentials POST")
        assert ex.body["url"] == f"{evflex.base}/ocpi/versions", ex.body
        # The library (the CPO) reads evflex's versions with the token in evflex's body before
        # it answers (OCPI 2.2.1 credentials.asciidoc, registration: the receiver of the POST
        # fetches the sender's versions and endpoints with that token first): evflex must
        # already accept the token it sends when it POSTs.
        answer = ex.response if isinstance(ex.response, dict) else {}
        ok = ex.status == 200 and answer.get("status_code") == 1000
        assert ok, (f"the CPO's answer to evflex's credentials POST: HTTP {ex.status} {answer}; "
                    f"evflex: {out.stdout}{out.stderr}")
        assert out.returncode == 0, f"evflex parties register failed: {out.stdout}{out.stderr}"
        assert token_a not in cpo.STATE.tokens_a
        (party,) = cpo.STATE.parties.values()
        world.evflex_token = party["ours"]
        world.token_c = party["ours_presented_by_them"]
        listed = evflex.cli("parties", "list")
        assert "registered" in listed.stdout and f"{cpo.COUNTRY}*{cpo.PARTY}" in listed.stdout.upper(), listed.stdout

    def test_evflex_calls_with_the_token_the_cpo_answered(self, evflex, world):
        (token_c,) = require(world, "token_c")
        user = evflex.api("POST", "/api/v1/users", json={"name": "OCPI peer driver 2", "opted_in": True})
        uid = user["token_uid"]
        ex = wait_for(f"evflex's Token PUT for {uid}", lambda: [
            e for e in exchanges("PUT", "/ocpi/cpo/2.2.1/tokens/") if e.path.upper().endswith(uid)])[-1]
        assert_validated(ex)
        library_answer_ok(ex)
        assert ex.headers.get("authorization") == f"Token {b64(token_c)}", ex.headers

    def test_cpo_calls_evflex_with_its_token(self, evflex, world):
        (evflex_token,) = require(world, "evflex_token")
        versions = check_versions(evflex.call("GET", "/ocpi/versions", ocpi=evflex_token),
                                  "GET /ocpi/versions (token C)")
        assert versions
        check_answer(evflex.call("GET", "/ocpi/2.2.1/credentials", ocpi=evflex_token),
                     "GET /ocpi/2.2.1/credentials (token C)", Credentials)
