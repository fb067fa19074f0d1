"""HTTP layer of `/auth/*` and `/users/me*`: parse, call the service, shape the reply."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.responses import JSONResponse

from epicura.auth import service
from epicura.auth.access import CurrentPrincipal, CurrentUser, NotAuthenticated
from epicura.auth.schemas import (
    PLAIN_TEXT,
    Accepted,
    ChangePasswordRequest,
    DeleteAccountRequest,
    ForgotPasswordRequest,
    LoginRequest,
    LoginSessionOut,
    OAuthToken,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    TokenPair,
    UserOut,
    UserUpdate,
    VerifyEmailRequest,
)
from epicura.auth.tokens import InvalidToken, IssuedTokens, TokenReused
from epicura.kit.errors import (
    NotFound,
    PreconditionFailed,
    RateLimited,
    UnsupportedMediaType,
    responses,
)
from epicura.kit.etag import check_if_match, make_etag, not_modified
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def json_only(request: Request) -> None:
    """Bodies must be JSON (415 otherwise), whatever the framework would tolerate."""
    if request.method in ("POST", "PUT", "PATCH"):
        content_type = request.headers.get("content-type", "")
        has_body = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        media = content_type.split(";")[0].strip().lower()
        if has_body and media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType("Send application/json")


auth_router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[Depends(json_only)])
oauth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users/me", tags=["users"], dependencies=[Depends(json_only)])


def _token_reply(issued: IssuedTokens) -> JSONResponse:
    body = TokenPair(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_at=issued.refresh_expires_at,
        session_id=issued.session_id,
    )
    return JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)


@auth_router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=responses(service.PasswordTooCommon, RateLimited),
)
async def register(
    body: RegisterRequest, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Accepted:
    """Create an account. The reply is the same whether or not the e-mail was already taken."""
    await service.register(
        rt,
        session,
        email=str(body.email),
        password=body.password,
        display_name=body.display_name,
        locale=body.locale,
        timezone=body.timezone,
        ip=ip,
    )
    return Accepted(detail=service.REGISTERED_DETAIL)


@auth_router.post(
    "/login",
    response_model=TokenPair,
    responses=responses(service.InvalidCredentials, RateLimited),
)
async def login(
    body: LoginRequest, request: Request, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> JSONResponse:
    """Sign in; `session_name` names this login session (an app install or a browser)."""
    issued = await service.login(
        rt,
        session,
        email=body.email,
        password=body.password,
        session_name=body.session_name,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    return _token_reply(issued)


@oauth_router.post(
    "/token",
    response_model=OAuthToken,
    responses=responses(service.InvalidCredentials, RateLimited),
)
async def oauth_token(
    username: Annotated[str, Form(max_length=320, pattern=PLAIN_TEXT)],
    password: Annotated[str, Form(max_length=1024)],
    request: Request,
    rt: RuntimeDep,
    session: DbSession,
    ip: ClientIp,
) -> JSONResponse:
    """OAuth2 password flow for the Authorize button of `/docs` (username = e-mail)."""
    issued = await service.login(
        rt,
        session,
        email=username,
        password=password,
        session_name="API docs",
        ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    body = OAuthToken(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
    )
    return JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)


@auth_router.post(
    "/refresh",
    response_model=TokenPair,
    responses=responses(InvalidToken, TokenReused),
)
async def refresh(
    body: RefreshRequest, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> JSONResponse:
    """Trade a refresh token for a new pair. Every use rotates it; a reused token ends the
    whole login session (401 `token_reused`)."""
    await rt.limiter.hit("60/minute", "refresh-ip", ip)
    return _token_reply(await service.refresh(rt, session, body.refresh_token, ip))


@auth_router.post("/logout", status_code=204, responses=responses())
async def logout(
    body: RefreshRequest, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Response:
    """End the login session of this refresh token."""
    await rt.limiter.hit("60/minute", "logout-ip", ip)
    await service.logout(rt, session, body.refresh_token, ip)
    return Response(status_code=204)


@auth_router.post("/logout-all", status_code=204, responses=responses(NotAuthenticated))
async def logout_all(
    principal: CurrentPrincipal, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Response:
    """End every login session of the caller, this one included."""
    await service.end_all_sessions(rt, session, principal.user_id, "logout_all", ip=ip)
    return Response(status_code=204)


@auth_router.post(
    "/password/forgot", status_code=202, response_model=Accepted, responses=responses()
)
async def forgot_password(
    body: ForgotPasswordRequest, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Accepted:
    """E-mail a reset link (valid 30 minutes). The reply never says whether the account exists."""
    await service.forgot_password(rt, session, body.email, ip)
    return Accepted(detail=service.FORGOT_DETAIL)


@auth_router.post(
    "/password/reset",
    status_code=204,
    responses=responses(service.EmailTokenInvalid, service.PasswordTooCommon),
)
async def reset_password(
    body: ResetPasswordRequest, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Response:
    """Set a new password with the e-mailed token; ends every login session. 410 when the
    link is expired, used or superseded by a newer one."""
    await rt.limiter.hit("20/hour", "reset-use-ip", ip)
    await service.reset_password(rt, session, body.token, body.new_password, ip)
    return Response(status_code=204)


@auth_router.post("/verify-email", status_code=204, responses=responses(service.EmailTokenInvalid))
async def verify_email(
    body: VerifyEmailRequest, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Response:
    await rt.limiter.hit("20/hour", "verify-ip", ip)
    await service.verify_email(rt, session, body.token, ip)
    return Response(status_code=204)


@auth_router.post(
    "/verify-email/resend",
    status_code=202,
    response_model=Accepted,
    responses=responses(NotAuthenticated, RateLimited),
)
async def resend_verification(user: CurrentUser, rt: RuntimeDep, session: DbSession) -> Accepted:
    await service.resend_verification(rt, session, user)
    return Accepted(detail="If the address is not yet confirmed, a new link is on its way.")


def _user_etag(user: UserOut) -> str:
    return make_etag(user.model_dump_json())


@users_router.get("", response_model=UserOut, responses=responses(NotAuthenticated))
async def get_me(user: CurrentUser, request: Request, response: Response) -> Response | UserOut:
    out = UserOut.model_validate(user)
    etag = _user_etag(out)
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    return out


@users_router.patch(
    "", response_model=UserOut, responses=responses(NotAuthenticated, PreconditionFailed)
)
async def update_me(
    body: UserUpdate, user: CurrentUser, request: Request, response: Response, session: DbSession
) -> UserOut:
    """Change `display_name`, `locale` or `timezone`; honours `If-Match` when sent."""
    check_if_match(request, _user_etag(UserOut.model_validate(user)), required=False)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    out = UserOut.model_validate(await service.update_profile(session, user, changes))
    response.headers["ETag"] = _user_etag(out)
    return out


@users_router.post(
    "/password",
    status_code=204,
    responses=responses(
        NotAuthenticated, service.WrongPassword, service.PasswordTooCommon, RateLimited
    ),
)
async def change_password(
    body: ChangePasswordRequest, user: CurrentUser, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Response:
    """Change the password; every login session ends (sign in again)."""
    await service.change_password(rt, session, user, body.current_password, body.new_password, ip)
    return Response(status_code=204)


@users_router.delete(
    "", status_code=204, responses=responses(NotAuthenticated, service.WrongPassword, RateLimited)
)
async def delete_me(
    body: DeleteAccountRequest, user: CurrentUser, rt: RuntimeDep, session: DbSession, ip: ClientIp
) -> Response:
    """Delete the account: personal data erased, sessions ended, appliances unpaired."""
    await service.delete_account(rt, session, user, body.password, ip)
    return Response(status_code=204)


@users_router.get(
    "/sessions", response_model=list[LoginSessionOut], responses=responses(NotAuthenticated)
)
async def list_sessions(principal: CurrentPrincipal, session: DbSession) -> list[LoginSessionOut]:
    rows = await service.list_sessions(session, principal.user_id)
    return [
        LoginSessionOut(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            current=row.id == principal.session_id,
        )
        for row in rows
    ]


@users_router.delete(
    "/sessions/{session_id}", status_code=204, responses=responses(NotAuthenticated, NotFound)
)
async def revoke_session(
    session_id: uuid.UUID,
    principal: CurrentPrincipal,
    rt: RuntimeDep,
    session: DbSession,
    ip: ClientIp,
) -> Response:
    await service.revoke_session(rt, session, principal.user_id, session_id, ip)
    return Response(status_code=204)
