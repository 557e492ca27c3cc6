"""schemathesis checks of twinshield's own (loaded with SCHEMATHESIS_HOOKS).

only_401_without_token: a run without a token must see nothing but 401 from
every endpoint that needs one (the public ones: health and the OpenAPI
document).
"""

import schemathesis

PUBLIC = {"/api/v1/health", "/api/v1/openapi.json"}


@schemathesis.check
def only_401_without_token(ctx, response, case):
    if case.operation.path in PUBLIC:
        return None
    if response.status_code != 401:
        raise AssertionError(
            f"{case.method} {case.operation.path} answered {response.status_code} without a token"
        )
    return None
