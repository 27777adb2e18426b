"""Mints tests/interop/fixtures/python-pyjwt.json with PyJWT and keys from `cryptography`.

Shapes PyJWT produces by default: header `typ: JWT`; here `aud` is an array and the scopes
are in `scope`.
"""

import importlib.metadata
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

import common

ISSUER = "https://pyjwt.interop.test"


def generate(alg):
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def public_jwk(alg, key):
    exporter = {"RS256": RSAAlgorithm, "PS256": RSAAlgorithm, "ES256": ECAlgorithm,
                "ES384": ECAlgorithm, "EdDSA": OKPAlgorithm}[alg]
    return exporter.to_jwk(key.public_key(), as_dict=True)


def main():
    keys, tokens = [], []
    for alg in common.ALGORITHMS:
        kid = f"pyjwt-{alg.lower()}"
        key, stranger = generate(alg), generate(alg)
        keys.append({**public_jwk(alg, key), "kid": kid, "alg": alg, "use": "sig"})
        for name, expect, claims, use_stranger in common.cases(ISSUER, "pyjwt-client"):
            claims = {**claims, "jti": str(uuid.uuid4()), "scope": "echo:read"}
            if isinstance(claims["aud"], str):
                claims["aud"] = [claims["aud"], "https://graph.interop.test"]
            token = jwt.encode(claims, stranger if use_stranger else key, algorithm=alg,
                               headers={"kid": kid})
            tokens.append({"name": name, "alg": alg, "expect": expect, "token": token})
    library = (f"PyJWT {importlib.metadata.version('PyJWT')} + "
               f"cryptography {importlib.metadata.version('cryptography')}")
    common.write("python-pyjwt.json", library, "tests/interop/minters/mint_pyjwt.py", ISSUER,
                 {"keys": keys}, tokens)


if __name__ == "__main__":
    main()
