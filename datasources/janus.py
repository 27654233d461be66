"""A small client of the Janus WebRTC server's HTTP API, for 整体联动 rooms (VideoRoom plugin).

The server creates and destroys rooms; browsers only join them (with the room's pin). Each
operation opens a Janus session, attaches the VideoRoom plugin, sends one synchronous request
and destroys the session again, so nothing is left to keep alive between calls.

Janus's answers are treated as untrusted: anything that is not the expected JSON shape is a
`JanusError` with a message saying what was missing, as are refusals, timeouts and an
unreachable server. Proxies from the environment are not used: Janus sits next to the app.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

VIDEOROOM = "janus.plugin.videoroom"
MAX_ANSWER = 1 << 20  # bytes of one Janus answer: a room listing is a few KiB
ROOM_IDS = (1 << 53) - 1  # JavaScript's janus.js keeps room ids as numbers: stay exact
NO_SUCH_ROOM = 426  # JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM
ROOM_EXISTS = 427  # JANUS_VIDEOROOM_ERROR_ROOM_EXISTS


class JanusError(RuntimeError):
    """Janus is unreachable, refused a request or answered something unexpected."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Room:
    room: int
    secret: str  # destroys the room (the server keeps it)
    pin: str  # joins the room (handed to the invited screens)

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"Room(room={self.room})"


class JanusClient:
    def __init__(self, url: str, admin_key: str | None, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the Janus URL must be http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.admin_key = admin_key
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"JanusClient({self.url!r})"

    # -- the API ------------------------------------------------------------------------
    def info(self) -> dict:
        """GET {url}/info: version, plugins, transports."""
        answer = self._request("GET", self.url + "/info", None, time.monotonic() + self.timeout_s)
        if answer.get("janus") != "server_info":
            raise JanusError(f"Janus /info answered {_brief(answer)}")
        return answer

    def create_room(self, description: str, publishers: int) -> Room:
        """A private, temporary VideoRoom with a random id, secret and pin."""
        for _ in range(3):  # a random 53-bit id that is taken: try another
            room = Room(secrets.randbelow(ROOM_IDS) + 1, secrets.token_urlsafe(18),
                        secrets.token_urlsafe(12))
            body: dict[str, Any] = {
                "request": "create", "room": room.room, "description": description[:120],
                "secret": room.secret, "pin": room.pin, "is_private": True, "permanent": False,
                "publishers": max(int(publishers), 2), "videocodec": "vp8", "audiocodec": "opus",
            }
            if self.admin_key:
                body["admin_key"] = self.admin_key
            try:
                data = self._videoroom(body, expect="created")
            except JanusError as e:
                if e.code == ROOM_EXISTS:
                    continue
                raise
            if data.get("room") != room.room:
                raise JanusError(f"Janus created room {data.get('room')!r}, not {room.room}")
            return room
        raise JanusError("Janus: no free room id after 3 tries")

    def destroy_room(self, room: int, secret: str) -> None:
        """Destroy a room; a room that no longer exists is not an error."""
        try:
            self._videoroom({"request": "destroy", "room": int(room), "secret": secret,
                             "permanent": False}, expect="destroyed")
        except JanusError as e:
            if e.code != NO_SUCH_ROOM:
                raise

    def participants(self, room: int) -> list[dict]:
        """Who is in the room: [{"id", "display", "publisher"}]."""
        data = self._videoroom({"request": "listparticipants", "room": int(room)},
                               expect="participants")
        listed = data.get("participants")
        if not isinstance(listed, list):
            raise JanusError("Janus listparticipants: no participants list")
        out = []
        for p in listed:
            if not isinstance(p, dict) or "id" not in p:
                raise JanusError(f"Janus listparticipants: a malformed entry {_brief(p)}")
            display = p.get("display")
            out.append({"id": p["id"], "display": display if isinstance(display, str) else "",
                        "publisher": p.get("publisher") is True})
        return out

    # -- the HTTP API underneath ----------------------------------------------------------
    def _videoroom(self, body: dict, expect: str) -> dict:
        """One synchronous VideoRoom request in a session of its own; its plugin data."""
        deadline = time.monotonic() + self.timeout_s
        session = self._id(self._janus(self.url, {"janus": "create"}, deadline), "session")
        try:
            base = f"{self.url}/{session}"
            handle = self._id(self._janus(base, {"janus": "attach", "plugin": VIDEOROOM},
                                          deadline), "handle")
            answer = self._janus(f"{base}/{handle}", {"janus": "message", "body": body}, deadline)
        finally:
            with contextlib.suppress(JanusError):  # else Janus drops it after session_timeout
                self._janus(f"{self.url}/{session}", {"janus": "destroy"},
                            time.monotonic() + min(self.timeout_s, 2.0))
        plugindata = answer.get("plugindata")
        data = plugindata.get("data") if isinstance(plugindata, dict) else None
        if not isinstance(data, dict):
            raise JanusError(f"Janus {body['request']}: no plugin data in {_brief(answer)}")
        if "error_code" in data or "error" in data:
            code = data.get("error_code")
            raise JanusError(f"Janus {body['request']} refused: {data.get('error')!s:.200}",
                             code if isinstance(code, int) else None)
        if data.get("videoroom") != expect:
            raise JanusError(f"Janus {body['request']}: answered {_brief(data)}")
        return data

    def _janus(self, url: str, message: dict, deadline: float) -> dict:
        transaction = secrets.token_hex(8)
        answer = self._request("POST", url, {**message, "transaction": transaction}, deadline)
        kind = answer.get("janus")
        if kind == "error":
            err = answer.get("error")
            err = err if isinstance(err, dict) else {}
            code = err.get("code")
            raise JanusError(f"Janus {message['janus']} refused: {err.get('reason')!s:.200}",
                             code if isinstance(code, int) else None)
        if kind not in ("success", "ack") or answer.get("transaction") != transaction:
            raise JanusError(f"Janus {message['janus']}: answered {_brief(answer)}")
        return answer

    @staticmethod
    def _id(answer: dict, what: str) -> int:
        data = answer.get("data")
        ident = data.get("id") if isinstance(data, dict) else None
        if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0:
            raise JanusError(f"Janus gave no {what} id: {_brief(answer)}")
        return ident

    def _request(self, method: str, url: str, payload: dict | None, deadline: float) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise JanusError(f"Janus at {self.url} timed out ({self.timeout_s:g} s)")
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=left) as resp:
                raw = resp.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as e:
            raise JanusError(f"Janus at {self.url} answered HTTP {e.code}") from None
        except (OSError, ValueError) as e:  # refused, unreachable, timeout, bad URL
            raise JanusError(f"Janus at {self.url} is unreachable: {e}") from None
        if len(raw) > MAX_ANSWER:
            raise JanusError(f"Janus at {self.url}: answer larger than {MAX_ANSWER} bytes")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise JanusError(f"Janus at {self.url} did not answer JSON") from None
        if not isinstance(answer, dict):
            raise JanusError(f"Janus at {self.url} answered {_brief(answer)}")
        return answer


def _brief(value: object) -> str:
    """A short rendering of an unexpected answer for an error message."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text[:200]
