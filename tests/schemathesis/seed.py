"""Seeds a fresh `evflex serve` for the Schemathesis run and plays the CPO behind it.

Started by tests/schemathesis/run (standard library only; runs in the test venv). It

1. serves a minimal fake CPO on a free loopback port: OCPI versions and version details for the
   credentials handshake, a charging-profile receiver that accepts every profile evflex sends
   (as tests/web/helpers.mjs `fakeCpo` does) and a Tokens receiver that takes every user token
   evflex pushes;
2. does the OCPI credentials handshake with the registration token (token A), so the CPO
   routes run with a real token C;
3. registers an EV user (opted in), loads a topology (group 1, three EVSEs, PV), a location
   and an ACTIVE session started with the user's evflex token uid on EVSE-1, posts a meter
   reading, runs one tick on the simulated clock (a stored schedule for group 1) and makes
   one accepted and one rejected charging request (request ids 1 and 2);
4. writes the credentials to ENV_FILE as shell assignments (then the run starts Schemathesis)
   and keeps serving the fake CPO until it is terminated.

Every timestamp is on the server's simulated clock (`--sim-clock`), so the seeded state is the
same on every run.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import urllib.error
import urllib.request

REGISTRATION_TOKEN = "schemathesis-registration-token"
OPERATOR_TOKEN = "schemathesis-operator-token"
CPO_TOKEN_B = "schemathesis-fake-cpo-token-b"
COUNTRY, PARTY = "NL", "EXA"

TOPOLOGY = {
    "groups": [
        {
            "id": 1,
            "name": "Garage A",
            "country_code": COUNTRY,
            "party_id": PARTY,
            "capacity_w": 22_000,
            "other_load_w": 2_000,
            "evses": ["EVSE-1", "EVSE-2", "EVSE-3"],
            "pv_inverters": [{"id": "roof", "peak_w": 10_000}],
        }
    ]
}


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def iso(unix_s: int) -> str:
    return dt.datetime.fromtimestamp(unix_s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCpo(http.server.BaseHTTPRequestHandler):
    """OCPI versions + details, and charging-profile and Tokens receivers that accept everything."""

    url = ""

    def log_message(self, *args):  # quiet: the run prints Schemathesis's report
        pass

    def _envelope(self, data, status=200):
        body = json.dumps(
            {
                "data": data,
                "status_code": 1000 if status == 200 else 2000,
                "status_message": "Success" if status == 200 else "Unknown",
                "timestamp": iso(int(dt.datetime.now(dt.timezone.utc).timestamp())),
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == "/ocpi/versions":
            return self._envelope([{"version": "2.2.1", "url": f"{self.url}/ocpi/2.2.1"}])
        if path == "/ocpi/2.2.1":
            return self._envelope(
                {
                    "version": "2.2.1",
                    "endpoints": [
                        {"identifier": "credentials", "role": "RECEIVER", "url": f"{self.url}/ocpi/2.2.1/credentials"},
                        {"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{self.url}/ocpi/2.2.1/chargingprofiles"},
                        {"identifier": "tokens", "role": "RECEIVER", "url": f"{self.url}/ocpi/2.2.1/tokens"},
                    ],
                }
            )
        if path.startswith("/ocpi/2.2.1/chargingprofiles"):
            return self._envelope({"result": "ACCEPTED", "timeout": 30})
        if path.startswith("/ocpi/2.2.1/tokens/"):
            return self._envelope(None)  # the users' tokens evflex pushes (PUT), all stored
        return self._envelope(None, status=404)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def call(base: str, method: str, path: str, body=None, auth: str | None = None):
    """Calls evflex with JSON; raises on a non-2xx answer (naming the call and the body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"seed: {method} {path}: HTTP {e.code} {e.read().decode()}") from None
    return json.loads(text) if text else None


def seed(base: str, cpo_url: str, now: int) -> dict[str, str]:
    # OCPI credentials handshake: token A in, token C (the CPO's credentials with evflex) out.
    r = call(
        base,
        "POST",
        "/ocpi/2.2.1/credentials",
        {
            "token": CPO_TOKEN_B,
            "url": f"{cpo_url}/ocpi/versions",
            "roles": [{"role": "CPO", "business_details": {"name": "Schemathesis CPO"}, "party_id": PARTY, "country_code": COUNTRY}],
        },
        f"Token {b64(REGISTRATION_TOKEN)}",
    )
    if r.get("status_code") != 1000:
        raise SystemExit(f"seed: handshake: {r}")
    token_c = r["data"]["token"]
    cpo = f"Token {b64(token_c)}"

    user = call(base, "POST", "/api/v1/users", {"name": "Schemathesis driver", "opted_in": True})
    bearer = f"Bearer {user['token']}"

    call(base, "PUT", "/api/v1/topology", TOPOLOGY, cpo)
    at = iso(now)
    evses = TOPOLOGY["groups"][0]["evses"]
    call(
        base,
        "PUT",
        f"/ocpi/2.2.1/locations/{COUNTRY}/{PARTY}/LOC-1",
        {
            "country_code": COUNTRY, "party_id": PARTY, "id": "LOC-1", "publish": True, "name": "Garage A",
            "address": "Stationsplein 1", "city": "Utrecht", "country": "NLD",
            "coordinates": {"latitude": "52.089", "longitude": "5.110"}, "time_zone": "Europe/Amsterdam",
            "last_updated": at,
            "evses": [
                {
                    "uid": uid, "evse_id": f"NL*EXA*E{uid}", "status": "CHARGING" if uid == "EVSE-1" else "AVAILABLE",
                    "last_updated": at,
                    "connectors": [{
                        "id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
                        "max_voltage": 230, "max_amperage": 16, "max_electric_power": 11_000, "last_updated": at,
                    }],
                }
                for uid in evses
            ],
        },
        cpo,
    )
    call(
        base,
        "PUT",
        f"/ocpi/2.2.1/sessions/{COUNTRY}/{PARTY}/S-1",
        {
            "country_code": COUNTRY, "party_id": PARTY, "id": "S-1", "start_date_time": iso(now - 20 * 60),
            "kwh": 1.2,
            "cdr_token": {"country_code": COUNTRY, "party_id": PARTY, "uid": user["token_uid"], "type": "RFID",
                          "contract_id": f"NL-EXA-C{user['token_uid']}"},
            "auth_method": "WHITELIST", "location_id": "LOC-1", "evse_uid": "EVSE-1", "connector_id": "1",
            "currency": "EUR", "status": "ACTIVE", "last_updated": at,
        },
        cpo,
    )
    call(
        base,
        "POST",
        "/api/v1/meter-values",
        {"meter_values": [{"evse_uid": "EVSE-1", "session_id": "S-1", "meterValue": [{"timestamp": at, "sampledValue": [
            {"measurand": "Energy.Active.Import.Register", "value": "1200", "unit": "Wh"},
            {"measurand": "Power.Active.Import", "value": "7.4", "unit": "kW"},
            {"measurand": "SoC", "value": "41", "unit": "Percent"},
        ]}]}]},
        cpo,
    )
    # One tick on the simulated clock: group 1 gets a stored schedule (cockpit, status, audit).
    call(base, "POST", "/api/v1/operator/tick", {}, f"Bearer {OPERATOR_TOKEN}")
    # Request 1 is accepted; request 2 asks for more than the group can give by its departure
    # and is rejected with an offer (what accept-offer takes).
    accepted = call(base, "POST", "/api/v1/requests",
                    {"session_id": "S-1", "energy_kwh": 10, "departure": iso(now + 4 * 3600)}, bearer)
    rejected = call(base, "POST", "/api/v1/requests",
                    {"session_id": "S-1", "energy_kwh": 200, "departure": iso(now + 2 * 3600)}, bearer)
    decisions = (accepted["decision"], rejected["decision"])
    if decisions != ("accepted", "rejected"):
        raise SystemExit(f"seed: the two requests were decided {decisions}, not (accepted, rejected)")
    return {"EVFLEX_ST_BEARER": user["token"], "EVFLEX_ST_CPO_TOKEN": b64(token_c)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="evflex base URL")
    ap.add_argument("--now", required=True, type=int, help="the server's --sim-clock (Unix s)")
    ap.add_argument("--env-file", required=True, help="where to write the credentials")
    args = ap.parse_args()

    srv = Server(("127.0.0.1", 0), FakeCpo)
    FakeCpo.url = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    values = seed(args.base, FakeCpo.url, args.now)
    tmp = f"{args.env_file}.tmp"
    with open(tmp, "w") as f:
        for k, v in values.items():
            f.write(f"{k}='{v}'\n")
    os.replace(tmp, args.env_file)  # the run waits for this file: write it whole

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
