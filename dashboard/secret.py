"""The server's signing secret (session cookies, embed tokens).

`PINGAN_SECRET_KEY` when set (several web hosts must share it; at least 32 bytes, else the
start is refused); otherwise a random key kept in `data_dir/secret.key` (mode 0600, in a data
dir of mode 0700), created by whichever process needs it first, so the CLI that mints embed
URLs and the web workers on the same host agree without configuration.
"""

from __future__ import annotations

import os
import secrets

from dashboard.datadir import private_dir
from dashboard.settings import Settings

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
