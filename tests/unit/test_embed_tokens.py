"""Embed tokens (dashboard/embed.py): minted and verified with the real itsdangerous signer and
a secret of the test's own; a synthetic topology, no Redis."""

from __future__ import annotations

import pytest

from dashboard.embed import (
    WIDGETS,
    EmbedGrant,
    EmbedRefusal,
    content_security_policy,
    mint,
    parse_ttl,
    refusal_message,
    verify,
)
from dashboard.settings import Settings
from datasources.topology import build_topology

NOW = 1_800_000_000.0


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
    tok = mint(settings, "events", "101", 3600, now=NOW)
    assert verify(settings, tok, "events", None, topo, now=NOW + 10) == \
        EmbedGrant("events", "101", "101", int(NOW) + 3600)


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
