"""Passwords (argon2id), opaque tokens (stored as SHA-256), TOTP, and sealed secrets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# How long a session token is good for: the JWT's expiry and the login answer's expires_in.
SESSION_TTL = timedelta(hours=24)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # bounds the hashing cost an anonymous request can cause

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the username is unknown, so that path costs the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (pass None for a missing user)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password_async(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: never on the event loop.
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


# --- opaque tokens -----------------------------------------------------------------

AGENT_TOKEN_PREFIX = "kfa_"


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    # SHA-256 suffices: tokens carry 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    ab = a.encode() if isinstance(a, str) else a
    bb = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(ab, bb)


def derive_key(server_secret: str, purpose: bytes) -> bytes:
    """One key per purpose from the server secret, whatever its length."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(
        server_secret.encode()
    )


def session_key(server_secret: str) -> str:
    """The HS256 key for session JWTs (hex, 256 bits)."""
    return derive_key(server_secret, b"kefal-lite session jwt v1").hex()


# --- secrets at rest ---------------------------------------------------------------


class SecretBox:
    """AES-256-GCM with a key derived from the server secret (not stored in the DB),
    so a database dump alone does not reveal MFA seeds."""

    def __init__(self, server_secret: str, purpose: bytes = b"kefal-lite mfa v1") -> None:
        self._aead = AESGCM(derive_key(server_secret, purpose))

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()


# --- TOTP (RFC 6238) ---------------------------------------------------------------

TOTP_ISSUER = "kefal-lite"


def new_totp_secret() -> str:
    return str(pyotp.random_base32())


def totp_uri(secret: str, username: str) -> str:
    return str(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER))


def totp_match(secret: str, otp: str, at: float, window: int = 1) -> int | None:
    """The time step `otp` belongs to (±window steps for clock drift), else None."""
    code = otp.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(at // totp.interval)
    found = None
    for candidate in range(step - window, step + window + 1):
        # compare every candidate so the time taken does not say which one matched
        if constant_time_equal(totp.generate_otp(candidate), code):
            found = candidate
    return found


# --- MFA recovery codes ------------------------------------------------------------

RECOVERY_CODES = 10
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_recovery_code() -> str:
    """16 base32 characters (80 random bits) as XXXX-XXXX-XXXX-XXXX: stored as SHA-256,
    which suffices for that much entropy, as for tokens (no argon2 on the login path)."""
    raw = "".join(secrets.choice(_BASE32) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def recovery_code_hash(code: str) -> bytes | None:
    """The stored form of a code as a person types it (any case, dashes or spaces or
    none); None if it cannot be a recovery code at all."""
    text = code.upper().replace("-", "").replace(" ", "")
    if len(text) != 16 or any(c not in _BASE32 for c in text):
        return None
    return token_hash(text)
