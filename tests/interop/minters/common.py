"""What every interop fixture holds, whichever library mints it.

A fixture is one JSON file in tests/interop/fixtures/:

    {"library": ..., "generator": ..., "issuer": ..., "audience": ...,
     "jwks": {"keys": [...public keys...]},
     "tokens": [{"name": ..., "alg": ..., "expect": ..., "token": ...}]}

`expect` is "valid" or the `JwtErrorKind::as_str()` the layer must answer with.
"""

import json
import os
import time

ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
AUDIENCE = "api://interop"
OTHER_AUDIENCE = "api://other"
# 2100-01-01T00:00:00Z: the fixtures are committed and must stay valid.
FAR_FUTURE = 4102444800
# 2000-01-01T00:00:00Z.
LONG_AGO = 946684800

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def cases(issuer, sub):
    """(name, expect, claims, signed with the stranger key) for each negative and positive case."""
    now = int(time.time())
    base = {"iss": issuer, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": FAR_FUTURE}
    return [
        ("valid", "valid", base, False),
        ("wrong key", "invalid_signature", base, True),
        ("expired", "expired", {**base, "iat": LONG_AGO - 3600, "exp": LONG_AGO}, False),
        ("wrong audience", "invalid_audience", {**base, "aud": OTHER_AUDIENCE}, False),
    ]


def write(name, library, generator, issuer, jwks, tokens):
    path = os.path.join(FIXTURES, name)
    document = {
        "library": library,
        "generator": generator,
        "issuer": issuer,
        "audience": AUDIENCE,
        "jwks": jwks,
        "tokens": tokens,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({len(tokens)} tokens)")
