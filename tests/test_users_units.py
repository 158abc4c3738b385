"""The user service's models and views, without servers: each model stores exactly the
document the service stored before it had models (field for field, byte for byte), and
each response schema builds the JSON the API answers."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import bson
import pytest
from bson import ObjectId

from winkit.core.auth import Role
from winkit.core.errors import BadRequest
from winkit.core.settings import Settings
from winkit.users.accounts import account_key
from winkit.users.mail import SmtpMail, SmtpSender
from winkit.users.models import (
    AccessGrant,
    AddressChange,
    AddressEntry,
    MailboxMessage,
    MailNotSent,
    OneTimeCode,
    ProfileChange,
    SignInWindow,
    UserAccount,
)
from winkit.users.schemas import OutboxMessage, Profile, SavedAddress, TokenResponse, UserOut

CREATED = datetime(2025, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)
UPDATED = datetime(2025, 3, 2, 18, 5, 0, 456000, tzinfo=UTC)
USER_ID = ObjectId("65f0c0ffee0000000000abcd")
ADDRESS_ID = ObjectId("65f0c0ffee0000000000beef")


def stored(doc: dict[str, object]) -> bytes:
    """The BSON the database gets: same fields, order and types, or different bytes."""
    return bson.encode(doc)


def account_document() -> dict[str, object]:
    """An account as registration stored it."""
    return {
        "_id": USER_ID,
        "name": "Ravi",
        "email": "Ravi@Example.com",
        "email_key": "ravi@example.com",
        "phone": "+91 98765 43210",
        "role": "customer",
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "created_at": CREATED,
        "updated_at": UPDATED,
    }


def test_an_account_is_stored_as_registration_stored_it():
    account = UserAccount(
        id=USER_ID,
        name="Ravi",
        email="Ravi@Example.com",
        email_key="ravi@example.com",
        phone="+91 98765 43210",
        role=Role.CUSTOMER,
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        created_at=CREATED,
        updated_at=UPDATED,
    )
    assert stored(account.to_document()) == stored(account_document())
    assert UserAccount.from_document(account_document()) == account


def test_a_new_account_gets_its_id_before_it_is_stored():
    fields = {key: value for key, value in account_document().items() if key != "_id"}
    first, second = UserAccount.model_validate(fields), UserAccount.model_validate(fields)
    assert isinstance(first.to_document()["_id"], ObjectId)
    assert first.id != second.id


def test_an_account_stored_without_phone_or_updated_at_reads():
    doc = {key: value for key, value in account_document().items() if key not in ("phone", "updated_at")}
    account = UserAccount.from_document(doc)
    assert account.phone is None
    assert account.changed_at == CREATED
    assert Profile.of(account).model_dump(mode="json") == {
        "id": str(USER_ID),
        "name": "Ravi",
        "email": "Ravi@Example.com",
        "role": "customer",
        "created_at": "2025-03-01T09:30:15.123000Z",
        "phone": None,
        "updated_at": "2025-03-01T09:30:15.123000Z",
    }


def test_account_views():
    account = UserAccount.from_document(account_document())
    assert UserOut.of(account).model_dump_json() == (
        '{"id":"65f0c0ffee0000000000abcd","name":"Ravi","email":"Ravi@Example.com","role":"customer",'
        '"created_at":"2025-03-01T09:30:15.123000Z"}'
    )
    assert Profile.of(account).model_dump_json() == (
        '{"id":"65f0c0ffee0000000000abcd","name":"Ravi","email":"Ravi@Example.com","role":"customer",'
        '"created_at":"2025-03-01T09:30:15.123000Z","phone":"+91 98765 43210",'
        '"updated_at":"2025-03-02T18:05:00.456000Z"}'
    )
    grant = AccessGrant(account=account.model_copy(update={"role": Role.STAFF}), token="t.o.k", expires_in=900)
    assert TokenResponse.of(grant).model_dump_json() == (
        '{"access_token":"t.o.k","token_type":"bearer","expires_in":900,'
        '"user_id":"65f0c0ffee0000000000abcd","role":"staff"}'
    )


def address_document(**changes: object) -> dict[str, object]:
    """An address as the address book stored it: the request's fields, then the owner,
    the times and whether it is the default."""
    return {
        "_id": ADDRESS_ID,
        "name": "Asha",
        "phone": "+919876543210",
        "line1": "12 MG Road",
        "line2": None,
        "landmark": "Opposite the park",
        "city": "Bengaluru",
        "pincode": "560001",
        "user_id": str(USER_ID),
        "created_at": CREATED,
        "updated_at": UPDATED,
        "is_default": True,
    } | changes


def test_an_address_is_stored_as_the_book_stored_it():
    entry = AddressEntry(
        id=ADDRESS_ID,
        name="Asha",
        phone="+919876543210",
        line1="12 MG Road",
        line2=None,
        landmark="Opposite the park",
        city="Bengaluru",
        pincode="560001",
        user_id=str(USER_ID),
        created_at=CREATED,
        updated_at=UPDATED,
        is_default=True,
    )
    assert stored(entry.to_document()) == stored(address_document())
    assert AddressEntry.from_document(address_document()) == entry


def test_saved_address_view():
    entry = AddressEntry.from_document(address_document(is_default=False))
    assert SavedAddress.of(entry).model_dump_json() == (
        '{"id":"65f0c0ffee0000000000beef","name":"Asha","phone":"+919876543210","line1":"12 MG Road",'
        '"line2":null,"landmark":"Opposite the park","city":"Bengaluru","pincode":"560001","is_default":false,'
        '"created_at":"2025-03-01T09:30:15.123000Z","updated_at":"2025-03-02T18:05:00.456000Z"}'
    )


def code_document() -> dict[str, object]:
    return {
        "_id": "ravi@example.com",
        "email": "Ravi@Example.com",
        "code_hash": "ab" * 32,
        "salt": "cd" * 16,
        "attempts": 0,
        "sent_at": CREATED,
        "expires_at": UPDATED,
    }


def test_a_one_time_code_is_stored_as_before():
    code = OneTimeCode(
        email_key="ravi@example.com",
        email="Ravi@Example.com",
        code_hash="ab" * 32,
        salt="cd" * 16,
        attempts=0,
        sent_at=CREATED,
        expires_at=UPDATED,
    )
    assert stored(code.to_document()) == stored(code_document())
    assert OneTimeCode.from_document(code_document()) == code


def test_a_code_stored_before_codes_kept_their_address_reads():
    doc = {key: value for key, value in code_document().items() if key != "email"}
    assert OneTimeCode.from_document(doc).email is None


def test_a_sign_in_window_reads():
    doc = {"_id": "ravi@example.com:1740821400", "attempts": 3, "expires_at": UPDATED}
    window = SignInWindow.from_document(doc)
    assert (window.id, window.attempts) == ("ravi@example.com:1740821400", 3)
    assert stored(window.to_document()) == stored(doc)


def test_a_dev_mailbox_message_is_stored_as_before_and_shown_without_its_keys():
    doc = {
        "_id": ADDRESS_ID,
        "to": "Ravi@Example.com",
        "to_key": "ravi@example.com",
        "subject": "123456 is your Winkit code",
        "body": "Your Winkit code is 123456.",
        "sent_at": CREATED,
    }
    message = MailboxMessage.from_document(doc)
    assert stored(message.to_document()) == stored(doc)
    assert OutboxMessage.of(message).model_dump_json() == (
        '{"to":"Ravi@Example.com","subject":"123456 is your Winkit code","body":"Your Winkit code is 123456.",'
        '"sent_at":"2025-03-01T09:30:15.123000Z"}'
    )


def test_an_account_is_keyed_by_its_address_identity():
    assert account_key("Ravi@Example.COM") == account_key("ravi@example.com")
    with pytest.raises(BadRequest):
        account_key("not an address")


async def test_an_smtp_server_that_cannot_be_reached_is_mail_not_sent():
    # A bound port nobody listens on refuses the connection at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        mail = SmtpMail(SmtpSender(Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)))
        with pytest.raises(MailNotSent) as not_sent:
            await mail.send("ravi@example.com", "Your code", "123456")
    assert isinstance(not_sent.value.__cause__, OSError)


def test_a_change_writes_only_the_fields_given_and_none_clears() -> None:
    assert ProfileChange(name="Asha").to_document() == {"name": "Asha"}
    assert ProfileChange(phone=None).to_document() == {"phone": None}
    assert AddressChange().to_document() == {}
    assert AddressChange(line2=None, city="Pune").to_document() == {"line2": None, "city": "Pune"}
