"""An email address's identity: the one key that names a mailbox everywhere.

Accounts (the users collection's unique ``email_key``), one-time codes, the dev outbox and
every limit counted per email (the user service's sign-in limits) key an address by
:func:`email_key`, so that they all agree on which spellings are one mailbox.

The rule, applied by ``email-validator`` (syntax only, no DNS):

* surrounding whitespace is dropped, and the address must be valid;
* the whole address is Unicode NFC: a decomposed ``é`` is the composed ``é``;
* the domain is in its IDNA ASCII form, by UTS-46 with non-transitional IDNA 2008 as in
  DNS: ``Bücher.de`` and ``xn--bcher-kva.de`` are one domain, but ``straße.de``
  (``xn--strae-oqa.de``) and ``strasse.de`` are two, as they are two domains;
* in the local part, the ASCII letters A-Z are lower-cased, and every other character is
  kept as it is.

Why ASCII case only. RFC 5321 leaves the local part's case to the receiving server; in
practice mail servers ignore ASCII case, and people type ``Asha@`` and ``asha@`` for
one mailbox. For other letters no mail standard defines a mapping (RFC 6531 does not), and
the available ones merge distinct characters: ``str.casefold`` makes ``ß`` "ss" and ``ſ``
"s", ``str.lower`` depends on context (a final sigma) and turns ``İ`` into two code
points. Merging two people's mailboxes into one account would be a takeover; keeping
``Ünal@`` and ``ünal@`` apart costs at most a second account, and each account is only
ever opened with a code mailed to its own address.

Special-use domains (RFC 6761: ``.local``, ``.localhost``, ``.test``, ...) cannot receive
mail from the internet and email-validator refuses them, but the dev staff account lives
at ``staff@winkit.local`` and must keep signing in: they get a key all the same (see
:func:`_special_use`). Registration still refuses them, as its request models validate
with pydantic's ``EmailStr`` (every address ``EmailStr`` accepts has a key, and its
normalised form has the same key).

An invalid address has no key (``None``): nothing is stored under it, so it matches no
account and no code, and no per-email limit counts it.

Keys written before this rule were ``str.casefold()`` of the address. For an address of
ASCII characters only, that is the same key (uts46 lower-cases an ASCII domain, and
nothing else changes), so existing accounts keep working. A stored key with any non-ASCII
character (in the local part, or an internationalised domain) differs from the new one:
such accounts are not found until a one-off migration recomputes ``email_key`` from the
stored ``email`` (reporting any two accounts that then collide).
"""

from __future__ import annotations

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, ValidatedEmail, validate_email

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# email-validator allows this special-use TLD when test_environment is set.
_STAND_IN_TLD = ".test"


def email_key(address: str) -> str | None:
    """The identity of ``address`` (see the module docstring), or None if it is not valid."""
    address = address.strip()
    try:
        checked = _validate(address)
    except EmailNotValidError:
        return _special_use(address)
    return _key(checked.local_part, checked.ascii_domain)


def _validate(address: str) -> ValidatedEmail:
    return validate_email(address, check_deliverability=False, test_environment=True, globally_deliverable=False)


def _key(local_part: str, ascii_domain: str) -> str:
    return f"{local_part.translate(_ASCII_LOWER)}@{ascii_domain}"


def _special_use(address: str) -> str | None:
    """The key of an address at a special-use domain, which email-validator refuses.

    The address is validated once more with a stand-in ``.test`` label after its domain
    (``staff@winkit.local.test``), which email-validator accepts in a test environment:
    the local part and the domain get every check and normalisation as above. The result
    counts only if, without the stand-in, the domain is a special-use one; any other
    refusal stands.
    """
    local_part, at, domain = address.rpartition("@")
    if not at:
        return None
    try:
        checked = _validate(f"{local_part}@{domain}{_STAND_IN_TLD}")
    except EmailNotValidError:
        return None
    ascii_domain = checked.ascii_domain.removesuffix(_STAND_IN_TLD)
    if not any(ascii_domain == name or ascii_domain.endswith(f".{name}") for name in SPECIAL_USE_DOMAIN_NAMES):
        return None
    return _key(checked.local_part, ascii_domain)
