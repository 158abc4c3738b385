"""What the user service keeps, each as its document is stored (database ``winkit_users``):
accounts, address book entries, one-time codes, sign-in windows and the dev mailbox's
messages; and what signing in grants."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field

from winkit.core.auth import Role
from winkit.core.database import Document
from winkit.core.store import StoredModel


class FieldChanges(BaseModel):
    """Fields to change: only those given are written (the others stay as they are), and
    one given as None is cleared."""

    def to_document(self) -> Document:
        return self.model_dump(exclude_unset=True)


class ProfileChange(FieldChanges):
    name: str | None = None
    phone: str | None = None


class AddressChange(FieldChanges):
    name: str | None = None
    phone: str | None = None
    line1: str | None = None
    line2: str | None = None
    landmark: str | None = None
    city: str | None = None
    pincode: str | None = None


class MailNotSent(Exception):
    """A message did not go out: the mail server could not be reached or refused it, or
    the dev mailbox could not keep it."""


class UserAccount(StoredModel):
    """An account (``users``), one per address identity (``email_key``)."""

    id: ObjectId = Field(default_factory=ObjectId, alias="_id")
    name: str
    email: str
    # winkit.core.email.email_key of ``email``: unique, and what the account is found by.
    email_key: str
    phone: str | None = None
    role: Role
    password_hash: str
    created_at: datetime
    # Absent from accounts stored before it was kept (see ``changed_at``).
    updated_at: datetime | None = None

    @property
    def changed_at(self) -> datetime:
        """When the profile last changed; an account without ``updated_at`` has not since
        it was created."""
        return self.updated_at or self.created_at


class AddressEntry(StoredModel):
    """A saved delivery address in a user's address book (``addresses``); exactly one of a
    user's is the default."""

    id: ObjectId = Field(default_factory=ObjectId, alias="_id")
    name: str
    phone: str
    line1: str
    line2: str | None
    landmark: str | None
    city: str
    pincode: str
    user_id: str
    created_at: datetime
    updated_at: datetime
    is_default: bool


class OneTimeCode(StoredModel):
    """The code last mailed to an address identity (``otp_codes``), kept only as a keyed
    hash, until it expires, is used or runs out of tries."""

    email_key: str = Field(alias="_id")
    # The address it was mailed to; codes stored before this was kept have none.
    email: str | None = None
    code_hash: str
    salt: str
    attempts: int
    sent_at: datetime
    # The database deletes the code once this has passed (a TTL index).
    expires_at: datetime


class SignInWindow(StoredModel):
    """Sign-in attempts for one address identity in one window (``sign_in_windows``),
    keyed ``"<email_key>:<window length>s:<window start>"``."""

    id: str = Field(alias="_id")
    attempts: int
    expires_at: datetime


class MailboxMessage(StoredModel):
    """A message in the dev mailbox (``dev_mail``), found by its recipient's identity."""

    id: ObjectId = Field(default_factory=ObjectId, alias="_id")
    to: str
    to_key: str | None
    subject: str
    body: str
    sent_at: datetime


class AccessGrant(BaseModel):
    """What signing in gives an account: a bearer token and how many seconds it lasts."""

    model_config = ConfigDict(frozen=True)

    account: UserAccount
    token: str
    expires_in: int
