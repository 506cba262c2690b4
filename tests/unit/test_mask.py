"""mask(): personal data in any sample the validation returns is masked."""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils.validation import mask, mask_row


@pytest.mark.parametrize("value, expected", [
    ("max.mustermann@web.de", "m***@w***.de"),
    ("MAX@WEB.DE ", "M***@W***.DE"),
    ("anna@mail.example.co.uk", "a***@m***.uk"),
    ("max@", "m***"),          # invalid emails: no domain, masked like any text
    ("kein", "k***"),
    ("@web.de", "?***@w***.de"),
])
def test_email(value, expected):
    assert mask(value, "email") == expected


@pytest.mark.parametrize("value, expected", [
    ("Max Mustermann", "M. M."),
    ("Dr. Anna-Lena von Berg", "D. A. v. B."),
    ("  Müller ", "M."),
    ("Ömer", "Ö."),
    ("van der Berg, Jan", "v. d. B. J."),
    ("", ""),
])
def test_name_to_initials(value, expected):
    assert mask(value, "full_name") == expected
    assert mask(value, "name") == expected


def test_phone_keeps_last_two_digits():
    assert mask("+49 30 1234567", "telefon") == "***67"
    assert mask("12", "phone") == "***"


def test_secrets_are_never_shown():
    assert mask("$2b$12$abcdefghijk", "password_hash") == "********"
    assert mask("whsec_123", "secret") == "********"


def test_values_that_are_not_personal_pass():
    assert mask("b05a01f8-3ffe-3aaf-9af9-04ffba2dd566", "id") == "b05a01f8-3ffe-3aaf-9af9-04ffba2dd566"
    assert mask("qualified", "status") == "qualified"
    assert mask(None, "email") is None
    assert mask(42, "lead_score") == 42
    assert mask(True, "consent_given") is True


def test_unknown_text_is_masked_and_email_like_values_are_recognised():
    assert mask("Hauptstraße 5", "address_line1") == "H***"
    assert mask("a@b.de", "note") == "a***@b***.de"
    assert mask("x", "city") == "*"


def test_mask_row_and_containers():
    row = mask_row({"id": "1", "email": "jan@gmx.de", "name": "Jan Berg", "postal_code": "10115",
                    "tags": ["Jan"], "extra": {"email": "x@y.de"}})
    assert row == {"id": "1", "email": "j***@g***.de", "name": "J. B.", "postal_code": "99999",
                   "tags": ["J***"], "extra": {"email": "x***@y***.de"}}


def test_plates_and_postal_codes_keep_their_shape_only():
    assert mask("B-AB 1234", "license_plate") == "X-XX 9999"
    assert mask("b ab1234", "license_plate") == "X XX9999"
    assert mask(" 10115", "postal_code") == " 99999"
