"""The server's signing secret (session cookies, embed tokens) and the embed keys.

`PINGAN_SECRET_KEY` when set (several web hosts must share it; at least 32 bytes, else the
start is refused); otherwise a random key kept in `data_dir/secret.key` (mode 0600, in a data
dir of mode 0700), created by whichever process needs it first, so the CLI that mints embed
URLs and the web workers on the same host agree without configuration.

Embed tokens are signed by `PINGAN_EMBED_KEY` when set (so it can rotate without signing
anyone out), else by that secret; `PINGAN_EMBED_KEY_PREVIOUS` still verifies during a grace
period (`load_embed_keys`, docs/embeds.md).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime

from dashboard.datadir import private_dir
from dashboard.settings import Settings, parse_instant

MIN_SECRET_BYTES = 32


class SecretKeyError(RuntimeError):
    """The configured signing key cannot be used (the message says why and what to do)."""


def load_secret(settings: Settings) -> bytes:
    if settings.secret_key:
        key = settings.secret_key.encode()
        if len(key) < MIN_SECRET_BYTES:
            raise SecretKeyError(
                f"PINGAN_SECRET_KEY is {len(key)} bytes: it signs session cookies and embed "
                f"tokens and needs at least {MIN_SECRET_BYTES} random bytes, e.g. "
                "`python -c 'import secrets; print(secrets.token_hex(32))'` (or unset it to "
                "use a generated key file in the data dir)")
        return key
    path = settings.secret_key_file
    private_dir(path.parent)
    if not path.exists():
        # written whole under a temporary name, then linked: a reader never sees half a key
        tmp = path.with_name(f".secret.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path}: the secret key is too short (delete it to make a new one)")
    return key.encode()


@dataclass(frozen=True)
class EmbedKeys:
    """The keys of embed tokens (dashboard/embed.py): `current` signs and verifies;
    `previous` only verifies, and only before `previous_until` (None: while it is set).
    `dedicated`: `current` is `PINGAN_EMBED_KEY`, not the server secret."""

    current: bytes
    dedicated: bool
    previous: bytes | None = None
    previous_until: datetime | None = None


def load_embed_keys(settings: Settings) -> EmbedKeys:
    """The embed keys from the settings; a short key or a bad end of grace is refused
    (SecretKeyError naming the variable, never showing a key)."""
    for env, value in (("PINGAN_EMBED_KEY", settings.embed_key),
                       ("PINGAN_EMBED_KEY_PREVIOUS", settings.embed_key_previous)):
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            raise SecretKeyError(
                f"{env} is {len(value.encode())} bytes: embed keys need at least "
                f"{MIN_SECRET_BYTES} random bytes, e.g. "
                "`python -c 'import secrets; print(secrets.token_hex(32))'` (docs/embeds.md)")
    until = None
    if settings.embed_key_previous_until:
        try:
            until = parse_instant(settings.embed_key_previous_until)
        except ValueError as e:
            raise SecretKeyError(f"PINGAN_EMBED_KEY_PREVIOUS_UNTIL="
                                 f"{settings.embed_key_previous_until[:64]!r}: {e}") from None
    if settings.embed_key:
        current, dedicated = settings.embed_key.encode(), True
    else:
        current, dedicated = load_secret(settings), False
    previous = settings.embed_key_previous.encode() if settings.embed_key_previous else None
    return EmbedKeys(current, dedicated, previous, until if previous else None)
