"""API keys: who may call the service, in which role, for which party.

A key is shown once, when issued (``evdc token issue --role driver --party app-7``):
``evdc_<key id>_<secret>``. The database keeps only the key id, the SHA-256 of the secret, the role
and the party, so a stolen database gives no usable key; the secret is 32 random bytes, so a plain
hash (not a slow password hash) is enough. Keys are checked in constant time and may be revoked.
They live in the bookings ledger's database (table ``api_tokens``), beside what they authorise.

Roles (``ROLES``): ``driver`` (a driver app: its own bookings), ``provider`` (a service provider:
its own jobs), ``operator`` (events, plans, everything) and ``charger`` (a charge point: its
station's schedule).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scheduler.inputs.errors import EvdcError
from scheduler.planning.ledger import READ_ONLY

ROLES = ("driver", "provider", "operator", "charger")
TOKEN_PREFIX = "evdc"
KEY_ID_BYTES = 6
SECRET_BYTES = 32
PARTY_MAX_CHARS = 100
_TOKEN = re.compile(rf"{TOKEN_PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([A-Za-z0-9_-]{{20,100}})\Z")
_PARTY = re.compile(r"[A-Za-z0-9._:@-]{1,100}\Z")

_META = sa.MetaData()
_TOKENS = sa.Table(
    "api_tokens", _META,
    sa.Column("key_id", sa.String(2 * KEY_ID_BYTES), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("party", sa.String(PARTY_MAX_CHARS), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40)),
)


@dataclass(frozen=True)
class Principal:
    """Who a valid key speaks for."""

    key_id: str
    role: str
    party: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class TokenStore:
    """The API keys in ``engine``'s database (the bookings ledger's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.begin() as db:
            _META.create_all(db)

    def issue(self, role: str, party: str) -> tuple[str, str]:
        """A new key for ``party`` in ``role``: (key id, the token to hand over; shown only now)."""
        if role not in ROLES:
            raise EvdcError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not _PARTY.match(party or ""):
            raise EvdcError(f"party {party!r}: 1 to {PARTY_MAX_CHARS} letters, digits or . _ : @ -")
        key_id, secret = secrets.token_hex(KEY_ID_BYTES), secrets.token_urlsafe(SECRET_BYTES)
        with self.engine.begin() as db:
            db.execute(_TOKENS.insert().values(key_id=key_id, secret_sha256=_digest(secret), role=role, party=party,
                                               created_at=pd.Timestamp.now(tz="UTC").isoformat(), revoked_at=None))
        return key_id, f"{TOKEN_PREFIX}_{key_id}_{secret}"

    def check(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token; None otherwise."""
        m = _TOKEN.match(token or "")
        if m is None:
            return None
        key_id, secret = m.groups()
        c = _TOKENS.c
        with self.engine.connect().execution_options(**READ_ONLY) as db:
            row = db.execute(sa.select(c.secret_sha256, c.role, c.party, c.revoked_at).where(c.key_id == key_id)).first()
        if row is None or row[3] is not None or not hmac.compare_digest(row[0], _digest(secret)):
            return None
        return Principal(key_id, row[1], row[2])

    def revoke(self, key_id: str) -> None:
        with self.engine.begin() as db:
            done = db.execute(_TOKENS.update().where(_TOKENS.c.key_id == key_id, _TOKENS.c.revoked_at.is_(None))
                              .values(revoked_at=pd.Timestamp.now(tz="UTC").isoformat())).rowcount
        if not done:
            raise EvdcError(f"no active key {key_id!r}")

    def keys(self) -> pd.DataFrame:
        """Every key: key_id, role, party, created_at, revoked_at (never a secret)."""
        c = _TOKENS.c
        with self.engine.connect().execution_options(**READ_ONLY) as db:
            rows = db.execute(sa.select(c.key_id, c.role, c.party, c.created_at, c.revoked_at).order_by(c.created_at)).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=["key_id", "role", "party", "created_at", "revoked_at"])
