"""Embed tokens (dashboard/embed.py): minted and verified with the real itsdangerous signer and
keys of the test's own; a synthetic topology, no Redis. The registry of ids
(datasources/embeds.py) on a SQLite file of the test's own."""

from __future__ import annotations

import pytest

from dashboard import embed
from dashboard.embed import (
    WIDGETS,
    EmbedGrant,
    EmbedRefusal,
    EmbedSigner,
    content_security_policy,
    parse_ttl,
    refusal_message,
)
from dashboard.settings import Settings
from datasources.topology import build_topology

NOW = 1_800_000_000.0


def mint(settings: Settings, *args, **kw) -> str:
    return embed.mint(settings, *args, **kw).token


def verify(settings: Settings, token, widget, centre, topo, now=None, active=lambda i: True):
    return embed.verify(EmbedSigner.from_settings(settings), token, widget, centre, topo,
                        active, now=now)


@pytest.fixture(scope="module")
def topo():
    rows = [("100", "测试市", 1, None, None, None, None),
            ("101", "北区", 2, "100", None, None, None),
            ("102", "南区", 2, "100", None, None, None),
            ("101001", "一镇", 3, "101", None, None, None),
            ("102001", "二镇", 3, "102", None, None, None)]
    return build_topology(rows, [("g1", "101001", "urban", 1)], [("c1", "101001", "dome")])


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="k" * 48, embed_max_ttl_s=7 * 86400)


def _flip(s: str, i: int) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


def test_valid_token_grants_the_widget_of_the_centre(settings, topo):
    minted = embed.mint(settings, "events", "101", 3600, now=NOW)
    assert verify(settings, minted.token, "events", None, topo, now=NOW + 10) == \
        EmbedGrant("events", "101", "101", int(NOW) + 3600, minted.token_id)
    assert len(minted.token_id) >= 12 and minted.expires == int(NOW) + 3600


def test_a_centre_within_the_scope_is_granted(settings, topo):
    tok = mint(settings, "map", "101", 3600, now=NOW)
    grant = verify(settings, tok, "map", "101001", topo, now=NOW)
    assert isinstance(grant, EmbedGrant) and (grant.scope, grant.centre) == ("101", "101001")


@pytest.mark.parametrize("token", [None, ""])
def test_missing(settings, topo, token):
    assert verify(settings, token, "events", None, topo, now=NOW) == EmbedRefusal("missing")


def test_expired(settings, topo):
    tok = mint(settings, "events", "101", 60, now=NOW)
    assert isinstance(verify(settings, tok, "events", None, topo, now=NOW + 59), EmbedGrant)
    refusal = verify(settings, tok, "events", None, topo, now=NOW + 60)
    assert refusal == EmbedRefusal("expired", expires=int(NOW) + 60)
    assert "2027-01-15 16:01" in refusal_message(refusal, "zh", "Asia/Shanghai")
    assert "expired at 2027-01-15 16:01" in refusal_message(refusal, "en", "Asia/Shanghai")


def test_tampered_payload_or_signature(settings, topo):
    tok = mint(settings, "events", "101", 3600, now=NOW)
    payload, sig = tok.rsplit(".", 1)
    for bad in (_flip(tok, 3), _flip(tok, len(payload) // 2),  # payload
                f"{payload}.{_flip(sig, 5)}", f"{payload}.{_flip(sig, len(sig) // 2)}",  # signature
                payload, f"{payload}.", "garbage", "a.b.c", "x" * 5000):
        assert verify(settings, bad, "events", None, topo, now=NOW) == EmbedRefusal("tampered"), bad


def test_a_token_of_another_secret_is_tampered(settings, topo, tmp_path):
    other = Settings(data_dir=tmp_path, secret_key="z" * 48)
    tok = mint(other, "events", "101", 3600, now=NOW)
    assert verify(settings, tok, "events", None, topo, now=NOW) == EmbedRefusal("tampered")


def test_the_secret_file_is_used_when_no_key_is_configured(tmp_path, topo):
    s = Settings(data_dir=tmp_path)
    tok = mint(s, "events", "101", 3600, now=NOW)
    assert (tmp_path / "secret.key").exists()
    assert isinstance(verify(s, tok, "events", None, topo, now=NOW), EmbedGrant)


def test_wrong_widget(settings, topo):
    tok = mint(settings, "events", "101", 3600, now=NOW)
    refusal = verify(settings, tok, "trend", None, topo, now=NOW)
    assert refusal == EmbedRefusal("wrong_widget", subject="trend")
    assert "trend" in refusal_message(refusal, "en", "Asia/Shanghai")


@pytest.mark.parametrize("centre", ["100", "102", "102001", "999", "<script>"])
def test_out_of_scope(settings, topo, centre):
    tok = mint(settings, "events", "101", 3600, now=NOW)
    refusal = verify(settings, tok, "events", centre, topo, now=NOW)
    assert refusal == EmbedRefusal("out_of_scope", subject=centre)
    assert centre in refusal_message(refusal, "zh", "Asia/Shanghai")


def test_mint_refuses_unknown_widgets_and_long_ttls(settings):
    assert Settings().embed_max_ttl_s == 90 * 86400
    with pytest.raises(ValueError, match="unknown widget"):
        mint(settings, "video", "101", 60)
    with pytest.raises(ValueError, match="ttl"):
        mint(settings, "events", "101", 7 * 86400 + 1)
    with pytest.raises(ValueError, match="ttl"):
        mint(settings, "events", "101", 0)
    assert len(WIDGETS) == 7


@pytest.mark.parametrize("text,seconds", [("3600", 3600), ("30m", 1800), ("1h", 3600),
                                          ("7d", 604800), ("2w", 1209600), (" 45s ", 45)])
def test_parse_ttl(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "1y", "h", "-5m", "1.5h"])
def test_parse_ttl_refuses(text):
    with pytest.raises(ValueError):
        parse_ttl(text)


def test_csp_frames_only_the_portal_origins():
    csp = content_security_policy(("https://a.example", "https://b.example"))
    assert csp.endswith("frame-ancestors https://a.example https://b.example")
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert content_security_policy(()).endswith("frame-ancestors 'none'")


# -- issue 12: ids, the registry of ids, the embed key and its rotation --------------------------

K_NEW, K_OLD, K_OTHER = "n" * 40, "o" * 40, "x" * 40
UNTIL = "2027-01-15T17:00+08:00"  # NOW + 3600 s
UNTIL_TS = 1_800_003_600


def keyed(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="k" * 48, **kw)


def test_emb101_the_id_is_in_the_token_and_checked_against_the_registry(settings, topo):
    minted = embed.mint(settings, "events", "101", 3600, now=NOW)
    asked = []

    def active(token_id: str) -> bool:
        asked.append(token_id)
        return False

    signer = EmbedSigner.from_settings(settings)
    assert embed.verify(signer, minted.token, "events", None, topo, active, now=NOW) == \
        EmbedRefusal("revoked")
    assert asked == [minted.token_id]
    # expired, missing and tampered tokens never reach the registry
    for tok, when in ((minted.token, NOW + 3600), (None, NOW), ("x.y", NOW)):
        embed.verify(signer, tok, "events", None, topo, active, now=when)
    assert asked == [minted.token_id]
    msg = refusal_message(EmbedRefusal("revoked"), "zh", "Asia/Shanghai")
    assert "已被撤销" in msg
    assert "revoked" in refusal_message(EmbedRefusal("revoked"), "en", "Asia/Shanghai")


def test_emb102_the_dedicated_key_signs_and_the_server_secret_no_longer_verifies(tmp_path, topo):
    old = keyed(tmp_path)  # before PINGAN_EMBED_KEY: the server secret signs
    new = keyed(tmp_path, embed_key=K_NEW)
    tok_old = mint(old, "events", "101", 7200, now=NOW)
    tok_new = mint(new, "events", "101", 7200, now=NOW)
    assert isinstance(verify(new, tok_new, "events", None, topo, now=NOW), EmbedGrant)
    assert verify(old, tok_new, "events", None, topo, now=NOW) == EmbedRefusal("tampered")
    assert verify(new, tok_old, "events", None, topo, now=NOW) == EmbedRefusal("tampered")
    assert verify(keyed(tmp_path, embed_key=K_OTHER), tok_new, "events", None, topo,
                  now=NOW) == EmbedRefusal("tampered")  # a key nobody configured


def test_emb103_the_previous_key_verifies_until_the_end_of_grace_and_never_signs(tmp_path, topo):
    before = keyed(tmp_path, embed_key=K_OLD)
    rotated = keyed(tmp_path, embed_key=K_NEW, embed_key_previous=K_OLD,
                    embed_key_previous_until=UNTIL)
    tok = mint(before, "events", "101", 7200, now=NOW)
    assert isinstance(verify(rotated, tok, "events", None, topo, now=NOW), EmbedGrant)
    assert isinstance(verify(rotated, tok, "events", None, topo, now=UNTIL_TS - 1), EmbedGrant)
    refusal = verify(rotated, tok, "events", None, topo, now=UNTIL_TS)
    assert refusal == EmbedRefusal("rotated", expires=UNTIL_TS)
    assert "2027-01-15 17:00" in refusal_message(refusal, "zh", "Asia/Shanghai")
    assert "embed key retired at 2027-01-15 17:00" in refusal_message(refusal, "en",
                                                                      "Asia/Shanghai")
    # new tokens are signed by the new key only
    fresh = mint(rotated, "events", "101", 60, now=NOW)
    assert verify(before, fresh, "events", None, topo, now=NOW) == EmbedRefusal("tampered")
    # no end of grace: accepted while it is configured
    open_ended = keyed(tmp_path, embed_key=K_NEW, embed_key_previous=K_OLD)
    assert isinstance(verify(open_ended, tok, "events", None, topo, now=NOW + 7000), EmbedGrant)
    # a tampered token stays tampered with two keys
    assert verify(rotated, tok[:-2] + "AA", "events", None, topo, now=NOW) == \
        EmbedRefusal("tampered")


def _legacy(key_settings: Settings, **payload) -> str:
    """A token as minted before ids: {"w", "c", "e"} only."""
    return EmbedSigner.from_settings(key_settings).dumps(
        {"w": "events", "c": "101", "e": int(NOW) + 3600, **payload})


def test_emb104_legacy_tokens_without_id(tmp_path, topo):
    plain = keyed(tmp_path)
    tok = _legacy(plain)
    # under the server secret (no dedicated key): they keep working until they expire
    assert verify(plain, tok, "events", None, topo, now=NOW, active=lambda i: False) == \
        EmbedGrant("events", "101", "101", int(NOW) + 3600, "")
    assert verify(plain, tok, "events", None, topo, now=NOW + 3600).reason == "expired"
    # rotated to a dedicated key with the secret as the previous one: until the grace ends
    rotated = keyed(tmp_path, embed_key=K_NEW, embed_key_previous="k" * 48,
                    embed_key_previous_until=UNTIL)
    assert isinstance(verify(rotated, tok, "events", None, topo, now=NOW), EmbedGrant)
    assert verify(rotated, tok, "events", None, topo, now=UNTIL_TS).reason == "rotated"
    # a dedicated key never signed an id-less token: refused
    dedicated = keyed(tmp_path, embed_key=K_NEW)
    assert verify(dedicated, _legacy(dedicated), "events", None, topo, now=NOW) == \
        EmbedRefusal("tampered")


@pytest.mark.parametrize("bad_id", ["", "short", "a" * 33, "../../etc/passwd12", "id with space",
                                    "<script>x</script>", "ĳĳĳĳĳĳĳĳĳĳĳĳ", "abc\x00defghijklm",
                                    12345678901234, None, ["abcdefghijklmn"], {"a": 1}])
def test_emb105_a_signed_token_with_an_odd_id_is_tampered(tmp_path, topo, bad_id):
    s = keyed(tmp_path, embed_key=K_NEW)
    tok = _legacy(s, i=bad_id)
    asked = []
    got = embed.verify(EmbedSigner.from_settings(s), tok, "events", None, topo,
                       lambda i: asked.append(i) or True, now=NOW)
    assert got == EmbedRefusal("tampered") and not asked


@pytest.mark.parametrize("payload", [{"w": "events", "c": "101", "e": True, "i": "a" * 16},
                                     {"w": "events", "c": "101", "e": 1.9e9, "i": "a" * 16},
                                     {"w": ["events"], "c": "101", "e": 2_000_000_000},
                                     [1, 2, 3], "text", None])
def test_emb106_signed_payloads_of_the_wrong_shape_are_tampered(tmp_path, topo, payload):
    s = keyed(tmp_path, embed_key=K_NEW)
    tok = EmbedSigner.from_settings(s).dumps(payload)
    assert verify(s, tok, "events", None, topo, now=NOW) == EmbedRefusal("tampered")


def test_emb107_huge_tokens_are_refused_before_any_work(settings, topo):
    for tok in ("a" * 1025, "eyJ" * 100_000, "." * 5000):
        assert verify(settings, tok, "events", None, topo, now=NOW) == EmbedRefusal("tampered")


def test_emb108_bad_keys_are_refused_naming_the_variable(tmp_path):
    from dashboard.secret import SecretKeyError, load_embed_keys
    for kw, name in (({"embed_key": "s" * 31}, "PINGAN_EMBED_KEY is 31 bytes"),
                     ({"embed_key": K_NEW, "embed_key_previous": "p" * 8},
                      "PINGAN_EMBED_KEY_PREVIOUS is 8 bytes"),
                     ({"embed_key": K_NEW, "embed_key_previous": K_OLD,
                       "embed_key_previous_until": "next week"},
                      "PINGAN_EMBED_KEY_PREVIOUS_UNTIL='next week'"),
                     ({"embed_key_previous": K_OLD,
                       "embed_key_previous_until": "2026-12-08T00:00"}, "needs its UTC offset")):
        with pytest.raises(SecretKeyError, match=name) as exc:
            load_embed_keys(keyed(tmp_path, **kw))
        assert "s" * 31 not in str(exc.value) and K_OLD not in str(exc.value)
    keys = load_embed_keys(keyed(tmp_path, embed_key=K_NEW, embed_key_previous=K_OLD,
                                 embed_key_previous_until=UNTIL))
    assert (keys.current, keys.dedicated, keys.previous) == (K_NEW.encode(), True, K_OLD.encode())
    assert keys.previous_until.timestamp() == UNTIL_TS
    assert load_embed_keys(keyed(tmp_path)).current == b"k" * 48  # unset: the server secret



def test_emb109_the_settings_refuse_a_bad_end_of_grace_and_hide_the_keys():
    from dashboard.settings import SettingsError, describe
    for raw in ("tomorrow", "2026-12-08", "2026-13-01T00:00+08:00", "2026-12-08T00:00"):
        with pytest.raises(SettingsError, match="PINGAN_EMBED_KEY_PREVIOUS_UNTIL"):
            Settings.from_env({"PINGAN_EMBED_KEY_PREVIOUS_UNTIL": raw})
    s = Settings.from_env({"PINGAN_EMBED_KEY_PREVIOUS_UNTIL": " 2026-12-08T00:00+08:00 "})
    assert s.embed_key_previous_until == "2026-12-08T00:00+08:00"
    values = {r["env"]: r["value"] for r in describe(Settings(embed_key=K_NEW,
                                                              embed_key_previous=K_OLD))}
    assert values["PINGAN_EMBED_KEY"] == values["PINGAN_EMBED_KEY_PREVIOUS"] == "(set)"


# -- the registry of ids (datasources/embeds.py) -------------------------------------------------

@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from datasources.migrations import migrate
    from datasources.registry import make_engine
    e = make_engine(f"sqlite:///{tmp_path_factory.mktemp('embreg') / 'r.sqlite3'}")
    migrate(e)
    yield e
    e.dispose()


def test_emb110_issue_records_list_revoke(engine, tmp_path, topo):
    from datetime import UTC, datetime

    from datasources import embeds
    s = keyed(tmp_path, embed_key=K_NEW)
    now = datetime.now(UTC).timestamp()
    a = embed.issue(engine, s, "events", "101", 3600, note="门户首页", now=now)
    b = embed.issue(engine, s, "map", "102", 60, now=now - 120)  # already expired
    active = embeds.list_embeds(engine, datetime.now(UTC))
    assert [r["id"] for r in active if r["id"] in (a.token_id, b.token_id)] == [a.token_id]
    row = next(r for r in active if r["id"] == a.token_id)
    assert (row["widget"], row["centre"], row["note"], row["state"]) == \
        ("events", "101", "门户首页", "active")
    assert row["expires"].timestamp() == a.expires and row["created"].tzinfo is not None
    states = {r["id"]: r["state"] for r in embeds.list_embeds(engine, datetime.now(UTC), True)}
    assert states[b.token_id] == "expired"
    assert embeds.is_active(engine, a.token_id)
    got, changed = embeds.revoke(engine, a.token_id, datetime.now(UTC))
    assert changed and got["state"] == "revoked" and got["revoked"] is not None
    assert embeds.revoke(engine, a.token_id, datetime.now(UTC))[1] is False  # kept once
    assert not embeds.is_active(engine, a.token_id)
    assert verify(s, a.token, "events", None, topo,
                  active=lambda i: embeds.is_active(engine, i)) == EmbedRefusal("revoked")
    for odd in ("nope", "' OR 1=1 --", "a" * 5000, "\x00" * 20, a.token_id + "%"):
        assert embeds.revoke(engine, odd, datetime.now(UTC)) is None
        assert not embeds.is_active(engine, odd)


def test_emb111_states_remember_for_a_few_seconds(engine):
    from datetime import UTC, datetime

    from datasources import embeds
    clock = [100.0]
    states = embeds.EmbedStates(engine, ttl_s=2.0, max_ids=3, clock=lambda: clock[0])
    tid = embeds.new_id()
    assert not states.active(tid)  # unknown
    embeds.record(engine, tid, "events", "101", datetime.now(UTC), datetime.now(UTC))
    assert not states.active(tid)  # remembered
    clock[0] += 2.0
    assert states.active(tid)
    embeds.revoke(engine, tid, datetime.now(UTC))
    clock[0] += 1.9
    assert states.active(tid)
    clock[0] += 0.1
    assert not states.active(tid)
    for _ in range(5):  # bounded memory
        states.active(embeds.new_id())
    assert len(states._seen) <= 3
    with pytest.raises(ValueError):
        embeds.record(engine, "bad id!", "events", "101", datetime.now(UTC), datetime.now(UTC))


def test_emb112_serve_and_embed_url_refuse_bad_embed_keys_at_start(tmp_path):
    from click.testing import CliRunner

    from dashboard.cli import main
    env = {"PINGAN_DATA_DIR": str(tmp_path), "PINGAN_SECRET_KEY": "k" * 40,
           "PINGAN_EMBED_KEY": "short-key"}
    out = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert out.exit_code == 1 and "PINGAN_EMBED_KEY is 9 bytes" in out.output
    assert "short-key" not in out.output
    env = {**env, "PINGAN_EMBED_KEY": K_NEW, "PINGAN_EMBED_KEY_PREVIOUS_UNTIL": "soon"}
    out = CliRunner().invoke(main, ["embed-url", "events", "101"], env=env)
    assert out.exit_code == 1 and "PINGAN_EMBED_KEY_PREVIOUS_UNTIL='soon'" in out.output


def test_ids_never_read_as_a_cli_option():
    """`pingan embeds revoke ID` with an id starting with '-' failed ("No such option"), one
    id in 64: the ids are made so that none does."""
    from datasources import embeds

    ids = [embeds.new_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(embeds.ID.fullmatch(i) and len(i) == 16 for i in ids)
