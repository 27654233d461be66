"""Sign-in throttle: per (user name, client address), growing delays, counted before the check.

- Each sign-in post is counted first: one Lua call increments the pair's count and decides,
  so parallel posts cannot slip through between a read and a write.
- The first `FREE` attempts of a pair are checked at once. After the `FREE`-th failure each
  attempt must wait a delay after the previous one that doubles (`BASE_DELAY_S`, 2x, 4x, …,
  at most `MAX_DELAY_S`). An attempt that comes too soon is refused without checking the
  password — and still counted, so hammering only lengthens the wait. An attempt that goes
  ahead after `FREE` claims the next delay before it is checked, and posts beyond `FREE` that
  arrive while the free ones are still being checked wait too: of any number of parallel
  posts, at most `FREE` are checked.
- A successful sign-in clears the pair; a pair is forgotten `KEEP_S` after its last attempt.
- Other addresses are not affected: whoever knows a user name (they are on the screens) can
  slow down only their own guesses, not lock the user out.
- `pingan users unlock NAME` clears every address of a name.

Kept in Redis (so across workers and hosts), one hash per pair under the `{auth}` hash tag.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import redis

from datasources.connection import scan_iter
from datasources.keys import Keys, glob_escape

FREE = 5
BASE_DELAY_S = 5
MAX_DELAY_S = 900
KEEP_S = 3600

_ATTEMPT = """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
if n <= free then return {1, n, 0} end
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if wait_until == 0 then
  -- the free attempts are still being checked (parallel posts): wait for their verdict
  wait_until = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'until', wait_until)
end
if now < wait_until then return {0, n, wait_until - now} end
local d = math.min(tonumber(ARGV[3]) * 2 ^ (n - free), tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'until', now + d)
return {1, n, 0}
"""

_FAILED = """
local n = tonumber(ARGV[2])
if n < tonumber(ARGV[3]) then return 0 end
local d = math.min(tonumber(ARGV[4]) * 2 ^ (n - tonumber(ARGV[3])), tonumber(ARGV[5]))
local wait_until = tonumber(ARGV[1]) + d
local have = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if wait_until > have then redis.call('HSET', KEYS[1], 'until', wait_until) end
return 1
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    attempt: int        # this pair's attempt number (0 when Redis could not be asked)
    wait_s: int = 0     # refused: seconds until the next attempt may be checked


class Throttle:
    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r = r
        self.keys = Keys(prefix)
        self._attempt = r.register_script(_ATTEMPT)
        self._failed = r.register_script(_FAILED)

    def attempt(self, name: str, addr: str) -> Verdict:
        """Count an attempt of `name` from `addr` and say whether it may be checked. Without
        Redis it may (the password check does not need Redis; sessions do, so nobody stays
        signed in while Redis is down)."""
        now = int(time.time() * 1000)
        try:
            ok, n, wait_ms = self._attempt(keys=[self.keys.login_attempts(name, addr)],
                                           args=[now, FREE, BASE_DELAY_S * 1000,
                                                 MAX_DELAY_S * 1000, KEEP_S])
        except (redis.RedisError, OSError):
            return Verdict(True, 0)
        return Verdict(bool(ok), int(n), -(-int(wait_ms) // 1000))

    def failed(self, name: str, addr: str, verdict: Verdict) -> None:
        """The password was wrong: from the `FREE`-th failure on, the next attempt waits."""
        if verdict.attempt < FREE:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            self._failed(keys=[self.keys.login_attempts(name, addr)],
                         args=[int(time.time() * 1000), verdict.attempt, FREE,
                               BASE_DELAY_S * 1000, MAX_DELAY_S * 1000])

    def succeeded(self, name: str, addr: str) -> None:
        with contextlib.suppress(redis.RedisError, OSError):
            self.r.delete(self.keys.login_attempts(name, addr))


def unlock(r: redis.Redis, prefix: str, name: str) -> int:
    """Forget every address's attempts at `name`; returns how many pairs were cleared."""
    pattern = glob_escape(Keys(prefix).login_attempts_head(name)) + "*"
    keys = list(scan_iter(r, pattern))  # on a cluster: the {auth} node only
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])
    return len(keys)
