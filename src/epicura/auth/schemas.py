"""Request and response bodies of the auth, user and admin-user endpoints."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

from epicura.kit.timezones import TimeZone

MAX_PASSWORD = 1024
Password = Annotated[str, Field(min_length=8, max_length=MAX_PASSWORD)]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]
# Text that is stored or looked up has no control characters (PostgreSQL refuses NUL outright).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
# ...and a name has something besides spaces (it is stored stripped).
NAME_TEXT = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"


def _plain_text(value: object) -> object:
    """Control characters are refused before stripping, as the document's pattern says."""
    if isinstance(value, str) and re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("control characters are not allowed")
    return value


# Not stripped here: the service normalises addresses, and the document could not say so.
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=320, pattern=PLAIN_TEXT)]
DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NAME_TEXT),
    BeforeValidator(_plain_text),
]
Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so nobody sets `role` by adding it."""

    model_config = ConfigDict(extra="forbid")


class RegisterRequest(Strict):
    email: EmailStr = Field(max_length=320)
    password: Password
    display_name: DisplayName
    locale: Locale = "en"
    timezone: TimeZone = "UTC"


class LoginRequest(Strict):
    email: LoginEmail
    password: AnyPassword
    session_name: DisplayName | None = None


class RefreshRequest(Strict):
    refresh_token: OpaqueToken


class ForgotPasswordRequest(Strict):
    email: LoginEmail


class ResetPasswordRequest(Strict):
    token: OpaqueToken
    new_password: Password


class VerifyEmailRequest(Strict):
    token: OpaqueToken


class ChangePasswordRequest(Strict):
    current_password: AnyPassword
    new_password: Password


class DeleteAccountRequest(Strict):
    password: AnyPassword


class UserUpdate(Strict):
    display_name: DisplayName | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None


class AdminUserUpdate(Strict):
    role: Literal["user", "admin"] | None = None
    is_active: bool | None = None


class Accepted(BaseModel):
    detail: str


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str
    refresh_expires_at: datetime = Field(description="When the refresh token expires if unused")
    session_id: uuid.UUID


class OAuthToken(BaseModel):
    """The OAuth2 password-flow reply used by the docs page's Authorize button."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    role: Literal["user", "admin"]
    locale: str
    timezone: str
    email_verified: bool
    is_active: bool
    created_at: datetime


class LoginSessionOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime
    current: bool
