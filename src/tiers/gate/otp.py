"""Email one-time PINs: made, mailed, checked, and limited.

A PIN is :data:`DIGITS` digits from :mod:`secrets`, valid ten minutes, good once, and
stored only as an HMAC-SHA256 with the environment's gate secret (six digits are too
few to store as a plain hash: anyone with the table could try them all). Checks use
:func:`hmac.compare_digest`. An address gets at most :data:`PER_ADDRESS` codes per
:data:`WINDOW`, a client (the address Caddy puts in ``X-Forwarded-For``) at most
:data:`PER_CLIENT` requests and :data:`WRONG_PER_CLIENT` wrong PINs, and each code dies
after :data:`TRIES` wrong tries, so guessing six digits stays hopeless. Whatever the
address, the page says the same ("if this address may enter, a code is on its way"):
only an address the ``allow`` rules let in gets a mail.

Mail goes through ``access.smtp`` (smtplib, in a thread; the password from the
environment variable ``password_secret`` names), or, without it, into a Maildir at
``.tiers/gate/ENV/mail/``: the local platform's mailbox, read by
``tiers access mailbox ENV``.
"""

from __future__ import annotations

import hashlib
import hmac
import mailbox
import os
import re
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from tiers.config.model import Smtp
from tiers.errors import OperationError

__all__ = [
    "DIGITS",
    "LIFETIME",
    "Mail",
    "digest",
    "mailbox_messages",
    "new_code",
    "send",
    "valid_address",
]

DIGITS = 6
LIFETIME = timedelta(minutes=10)
WINDOW = timedelta(minutes=15)
PER_ADDRESS = 5
PER_CLIENT = 20
WRONG_PER_CLIENT = 10
TRIES = 3

_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_CODE = re.compile(rf"\b(\d{{{DIGITS}}})\b")


def valid_address(text: str) -> str | None:
    """The address in the canonical form the rules compare (trimmed, lower case), or None
    for anything that is not one plain address (``a@evil.com@plyr.fm`` is not)."""
    address = text.strip().lower()
    if len(address) > 254 or not _ADDRESS.match(address) or ".." in address:
        return None
    return address


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(DIGITS))


def digest(key: bytes, address: str, code: str) -> str:
    """The stored form of a code: bound to the address, so a code is good for it only."""
    return hmac.new(key, f"{address}\n{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    sender: str

    def message(self) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message.set_content(self.body)
        return message


def compose(address: str, code: str, environment: str, project: str, sender: str) -> Mail:
    subject = f"{code} is your sign-in code for {project} {environment}"
    body = (
        f"Your code to sign in to {project} {environment}:\n\n    {code}\n\n"
        "It works once, for the next 10 minutes. If you did not ask for it, ignore this "
        "mail: nobody can sign in with your address without the code.\n"
    )
    return Mail(address, subject, body, sender)


def send(mail: Mail, smtp: Smtp | None, maildir: Path) -> None:
    """Deliver (blocking: run it in a thread). Errors say where and why, never the code."""
    if smtp is None:
        box = mailbox.Maildir(maildir, create=True)
        box.add(mail.message())
        return
    password = os.environ.get(smtp.password_secret) if smtp.password_secret else None
    if smtp.password_secret and password is None:
        raise OperationError(
            f"access.smtp.password_secret names {smtp.password_secret}, which is not set in "
            "the gate's environment; add it to the environment's secrets"
        )
    try:
        _smtp(mail, smtp, password)
    except (OSError, smtplib.SMTPException) as exc:
        raise OperationError(
            f"cannot send the sign-in code through {smtp.host}:{smtp.port}: {exc}"
        ) from None


def _smtp(mail: Mail, smtp: Smtp, password: str | None) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.tls == "tls":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=20, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=20)
    with client:
        if smtp.tls == "starttls":
            client.starttls(context=context)
        if smtp.username and password is not None:
            client.login(smtp.username, password)
        client.send_message(mail.message())


def mailbox_messages(maildir: Path) -> list[dict[str, Any]]:
    """The local mailbox, oldest first: to, when, subject and the code of each mail."""
    # the gate may be making the Maildir's folders this very moment
    if not all((maildir / part).is_dir() for part in ("new", "cur", "tmp")):
        return []
    try:
        messages = list(mailbox.Maildir(maildir, create=False))
    except FileNotFoundError:
        return []
    found = []
    for message in messages:
        subject = str(message["Subject"] or "")
        date = message["Date"]
        when = parsedate_to_datetime(date).astimezone(UTC) if date else None
        match = _CODE.search(subject)
        found.append(
            {
                "to": str(message["To"] or ""),
                "at": when.isoformat(timespec="seconds") if when else None,
                "subject": subject,
                "code": match.group(1) if match else None,
            }
        )
    found.sort(key=lambda item: item["at"] or "")
    return found
