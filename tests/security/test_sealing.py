"""The tracking token kept for an API retry is sealed with an authenticated cipher (AES-GCM from
``cryptography``), not a home-made keystream: it opens only with the client's bearer token and the same
idempotency key, and a changed byte is detected."""

from __future__ import annotations

import base64

from web.views.api import _seal, _unseal

TOKEN, BEARER, KEY = "trk_aaaaaaaaaaaaaaaaaaaaaaaa", "qf_the-clients-bearer-token", "retry-key-1"


def test_a_genuine_retry_opens_it_and_nothing_else_does() -> None:
    sealed = _seal(TOKEN, BEARER, KEY)
    assert TOKEN not in sealed and _unseal(sealed, BEARER, KEY) == TOKEN
    assert _seal(TOKEN, BEARER, KEY) != sealed  # a fresh nonce each time
    assert _unseal(sealed, "qf_another-client", KEY) is None
    assert _unseal(sealed, BEARER, "another-key") is None


def test_a_tampered_record_is_detected_not_decrypted_into_garbage() -> None:
    sealed = _seal(TOKEN, BEARER, KEY)
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    raw[-1] ^= 1
    assert _unseal("v2:" + base64.urlsafe_b64encode(bytes(raw)).decode(), BEARER, KEY) is None


def test_a_record_sealed_the_old_way_is_not_guessed_at() -> None:
    assert _unseal("6f6c642d786f722d6b657973747265616d", BEARER, KEY) is None
