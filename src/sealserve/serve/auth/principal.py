"""The 401/403 errors every transport renders, and the data plane hook that checks predict scopes."""

from __future__ import annotations

import re

from sealserve.serve.config import SCOPE_PATTERN
from sealserve.serve.errors import ServingError, shown
from sealserve.serve.request.dataplane import InferenceHook, InferenceRequest
from sealserve.serve.request.principal import EXPLAIN, PREDICT, Principal

REALM = 'Bearer realm="sealserve"'
SCOPE = re.compile(SCOPE_PATTERN)


class AuthenticationFailed(ServingError):
    """401: no credentials, or credentials that do not verify. `reason` is a fixed word for logs and metrics;
    `subject`, when known (a token's verified subject, an API key's name), names the caller in the log."""

    def __init__(self, reason: str, message: str, *, subject: str | None = None, error: str | None = "invalid_token") -> None:
        challenge = REALM if error is None else f'{REALM}, error="{error}"'  # the message, which may quote the token, stays in the body
        super().__init__(401, "unauthenticated", message, headers={"WWW-Authenticate": challenge})
        self.reason, self.subject = reason, subject


class MissingCredentials(AuthenticationFailed):
    def __init__(self) -> None:
        super().__init__("missing", "credentials are required: Authorization: Bearer <token or API key>, or X-API-Key", error=None)


class Forbidden(ServingError):
    """403: the caller is known, but none of their scopes allows this call (RFC 6750's insufficient_scope)."""

    def __init__(self, principal: Principal, scope: str, what: str) -> None:
        named = scope if SCOPE.fullmatch(scope) else scope.split(":", 1)[0]  # a header never carries an odd client-chosen name
        challenge = f'{REALM}, error="insufficient_scope", scope="{named}"'
        message = f"{principal.subject!r} lacks the {shown(scope)} scope needed for {what}"
        super().__init__(403, "forbidden", message, headers={"WWW-Authenticate": challenge})


class ModelAccess(InferenceHook):
    """Data plane hook: a prediction needs `predict` or `predict:<model>`, checked before the model is even resolved
    (so a caller cannot learn which models exist). No principal means the transport skipped authentication: refused.
    With `explain_scope`, an explanation needs `explain` or `explain:<model>` instead."""

    def __init__(self, explain_scope: bool = False) -> None:
        self.explain_scope = explain_scope

    def admit(self, request: InferenceRequest) -> None:
        principal = request.principal
        if not isinstance(principal, Principal):
            raise MissingCredentials()
        action = EXPLAIN if self.explain_scope and request.purpose == EXPLAIN else PREDICT
        if not principal.may_predict(request.model, action):
            what = "predictions" if action == PREDICT else "explanations"
            raise Forbidden(principal, f"{action}:{request.model}", f"{what} from model {shown(request.model)}")
