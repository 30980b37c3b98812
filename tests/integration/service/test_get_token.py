"""§7.2.1 GetToken (R17, issue 14): the whitelist is checked before the secret."""

import pytest

from esimota.errors import PermissionDenied, Unauthenticated
from esimota.service import admin, auth


async def test_outside_the_whitelist_no_answer_tells_a_right_secret_from_a_wrong_one(pool):
    made = await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.0/8",
                                     callback_url="https://a.example/cb")
    signer = auth.TokenSigner(bytes(32))
    cid = made.client.client_id
    for secret in (made.client_secret, "a wrong guess"):
        with pytest.raises(PermissionDenied) as err:
            await auth.get_token(pool, signer, cid, secret, "203.0.113.9")
        assert err.value.reason == "IP_NOT_WHITELISTED"
    with pytest.raises(Unauthenticated) as err:  # inside it, a wrong secret is 401
        await auth.get_token(pool, signer, cid, "a wrong guess", "10.1.2.3")
    assert err.value.reason == "BAD_CREDENTIALS"
    token, ttl = await auth.get_token(pool, signer, cid, made.client_secret, "10.1.2.3")
    assert ttl == 86400 and signer.verify(token)[0] == cid
