"""Authentication and authorization (docs/security.md): who is calling, and whether their scopes allow the call.

Credentials are checked once per transport (`http.py`: Starlette's AuthenticationMiddleware and one scope gate;
`grpc_gate.py`: one gate in front of every RPC); which model a caller may predict with is checked at the data
plane's one entry (`ModelAccess`), so every protocol obeys the same `predict:<model>` scopes.
"""

from sealserve.serve.auth.credentials import Authenticator
from sealserve.serve.auth.principal import ModelAccess
from sealserve.serve.request.principal import Principal

__all__ = ["Authenticator", "ModelAccess", "Principal"]
