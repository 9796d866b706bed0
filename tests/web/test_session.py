from __future__ import annotations

from xngin.web.session import SessionCodec, WebSession, csrf_matches


def test_a_session_survives_the_cookie_round_trip() -> None:
    codec = SessionCodec("a" * 32)
    session = WebSession.anonymous().signed_in_as(
        api_key_id="k1", organization_id="o1", organization_name="acme"
    )
    assert codec.loads(codec.dumps(session)) == session


def test_a_tampered_cookie_is_no_session() -> None:
    codec = SessionCodec("a" * 32)
    value = codec.dumps(WebSession.anonymous())
    payload, _, signature = value.rpartition(".")
    assert codec.loads(payload[:-2] + "xx." + signature) is None
    assert codec.loads("") is None and codec.loads(None) is None


def test_a_cookie_signed_with_another_key_is_no_session() -> None:
    value = SessionCodec("a" * 32).dumps(WebSession.anonymous())
    assert SessionCodec("b" * 32).loads(value) is None


def test_an_expired_cookie_is_no_session() -> None:
    value = SessionCodec("a" * 32).dumps(WebSession.anonymous())
    assert SessionCodec("a" * 32, max_age=-1).loads(value) is None


def test_signing_in_rotates_the_csrf_token() -> None:
    before = WebSession.anonymous()
    after = before.signed_in_as(api_key_id="k", organization_id="o", organization_name="n")
    assert after.csrf_token != before.csrf_token and after.signed_in and not before.signed_in


def test_csrf_tokens_must_match_exactly() -> None:
    session = WebSession(csrf_token="abc")
    assert csrf_matches(session, "abc")
    assert not csrf_matches(session, "abd")
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, None)
    assert not csrf_matches(None, "abc")
