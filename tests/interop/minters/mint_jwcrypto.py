"""Mints tests/interop/fixtures/python-jwcrypto.json with jwcrypto (keys and tokens).

Shapes: no `typ` header at all; `aud` a string; the scopes in `scp` (Azure AD's claim).
"""

import importlib.metadata
import json
import uuid

from jwcrypto import jwk, jwt

import common

ISSUER = "https://jwcrypto.interop.test"


def generate(alg, kid):
    params = {
        "RS256": {"kty": "RSA", "size": 2048},
        "PS256": {"kty": "RSA", "size": 2048},
        "ES256": {"kty": "EC", "crv": "P-256"},
        "ES384": {"kty": "EC", "crv": "P-384"},
        "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    }[alg]
    return jwk.JWK.generate(kid=kid, alg=alg, use="sig", **params)


def main():
    keys, tokens = [], []
    for alg in common.ALGORITHMS:
        kid = f"jwcrypto-{alg.lower()}"
        key, stranger = generate(alg, kid), generate(alg, kid)
        keys.append(key.export_public(as_dict=True))
        for name, expect, claims, use_stranger in common.cases(ISSUER, "jwcrypto-client"):
            claims = {**claims, "jti": str(uuid.uuid4()), "scp": "echo:read"}
            token = jwt.JWT(header={"alg": alg, "kid": kid}, claims=json.dumps(claims))
            token.make_signed_token(stranger if use_stranger else key)
            tokens.append({"name": name, "alg": alg, "expect": expect,
                           "token": token.serialize()})
    library = f"jwcrypto {importlib.metadata.version('jwcrypto')}"
    common.write("python-jwcrypto.json", library, "tests/interop/minters/mint_jwcrypto.py",
                 ISSUER, {"keys": keys}, tokens)


if __name__ == "__main__":
    main()
