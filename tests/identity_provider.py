"""A stand-in for the shop's identity provider: RSA signing keys, a JSON Web Key Set served
over HTTP on loopback (its keys changed at will, its fetches counted), and customer JWTs
signed with any of its keys."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "shop-identity"
AUDIENCE = "voucher-service"


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_jwk(self) -> dict:
        return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())),
                "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, customer_id: int, *, issuer: str = ISSUER, ttl: int = 600,
              kid: str | None = None) -> str:
        now = int(time.time())
        return jwt.encode({"sub": str(customer_id), "aud": AUDIENCE, "iss": issuer,
                           "iat": now, "exp": now + ttl},
                          self.private, algorithm="RS256", headers={"kid": kid or self.kid})


class KeySetServer:
    """``GET /jwks.json``: the public keys of ``publish(...)``'s keys; ``fetches`` counts
    the requests."""

    def __init__(self, *keys: SigningKey) -> None:
        self.fetches = 0
        self.publish(*keys)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        self.document = {"keys": [key.public_jwk() for key in keys]}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
