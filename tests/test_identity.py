"""An email address's identity (winkit.core.email), without servers.

Over HTTP: the user service's identity tests are in test_users_api.py, its
per-email sign-in limits in test_sign_in_limits.py.
"""

from __future__ import annotations

import unicodedata

import pytest
from pydantic import EmailStr, TypeAdapter

from winkit.core.email import email_key

ACCEPTED_BY_THE_API = TypeAdapter(EmailStr)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("asha@example.com", "asha@example.com"),
        ("  Asha.Shopper+Veg@Example.COM ", "asha.shopper+veg@example.com"),
        # The domain in its IDNA ASCII form, whichever form it came in.
        ("bob@Bücher.de", "bob@xn--bcher-kva.de"),
        ("bob@XN--BCHER-KVA.DE", "bob@xn--bcher-kva.de"),
        ("bob@straße.de", "bob@xn--strae-oqa.de"),
        # Unicode NFC: a decomposed é is the composed é.
        ("rene\u0301@example.com", "ren\u00e9@example.com"),
        # Only ASCII letters change case; other letters are kept as they are.
        ("STRAßE@example.com", "straße@example.com"),
        ("Ünal@example.com", "Ünal@example.com"),
        ("ſhopper@example.com", "ſhopper@example.com"),
        # Special-use domains that email-validator refuses are keyed all the same.
        ("Staff@Winkit.Local", "staff@winkit.local"),
        ("root@localhost", "root@localhost"),
        ("qa@Mail.Test", "qa@mail.test"),
    ],
)
def test_the_key_of_an_address(address, key):
    assert email_key(address) == key
    assert email_key(key) == key  # a key is its own key
    assert unicodedata.is_normalized("NFC", key)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        # Different domains: IDNA 2008 keeps ß, so straße.de is not strasse.de.
        ("bob@straße.de", "bob@strasse.de"),
        # Case folding would merge these; they are different local parts.
        ("straße@example.com", "strasse@example.com"),
        ("ſhopper@example.com", "shopper@example.com"),
        ("Ünal@example.com", "ünal@example.com"),
        ("İpek@example.com", "i̇pek@example.com"),
    ],
)
def test_distinct_characters_are_distinct_identities(one, other):
    assert email_key(one) is not None
    assert email_key(other) is not None
    assert email_key(one) != email_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Asha@EXAMPLE.com", "asha@example.com"),
        ("bob@bücher.de", "bob@xn--bcher-kva.de"),
        ("bob@BÜCHER.de", "bob@bücher.de"),
        ("\u00e9lise@example.com", "e\u0301lise@example.com"),
        ("\u00c9LISE@example.com", "E\u0301lise@Example.com"),
    ],
)
def test_spellings_of_one_address_are_one_identity(one, other):
    assert email_key(one) is not None
    assert email_key(one) == email_key(other)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "not-an-email",
        "@example.com",
        "asha@",
        "asha@@example.com",
        "a..b@example.com",
        ".asha@example.com",
        "asha@exa_mple.com",
        "asha@-example.com",
        "asha@example..com",
        "as ha@example.com",
        "Asha <asha@example.com>",
        '"asha"@example.com',
        "asha@[127.0.0.1]",
        "asha@win\nkit.local",
        "a" * 250 + "@example.com",
        "asha@" + "a" * 250 + ".com",
        "asha@xn--zz.de",
    ],
)
def test_invalid_addresses_have_no_key(address):
    assert email_key(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "asha@example.com",
        "Asha.Shopper@Example.COM",
        "bob@straße.de",
        "bob@BÜCHER.de",
        "rene\u0301@example.com",
        "Ünal@Ünal.example",
        "ſhopper@example.com",
        "Asha <asha@example.com>",
    ],
)
def test_what_the_api_accepts_keeps_its_key(address):
    """Request models normalise with EmailStr first: that must not change the identity."""
    accepted = ACCEPTED_BY_THE_API.validate_python(address)
    assert email_key(accepted) is not None
    if "<" not in address:
        assert email_key(accepted) == email_key(address)
