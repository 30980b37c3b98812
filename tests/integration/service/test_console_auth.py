"""Console sign-in (R28): scrypt passwords set by `esimota staff password`, throttled attempts, sessions that end
(sign-out, 8 h idle, a new password, a disabled or revoked account), the CSRF check — on a real database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from esimota.errors import InvalidArgument, PermissionDenied, RateLimited, Unauthenticated
from esimota.service import console_auth, staff, staff_auth

PASSWORD = "blue-Lantern-42-river"


@pytest.fixture
async def accounts(pool):
    await staff.add(pool, "root", "Root", "admin", None)
    await staff.add(pool, "olga", "Olga", "operator", "root")
    await staff.add(pool, "audra", "Audra", "auditor", "root")
    return pool


def test_scrypt_hash_is_salted_and_verifies():
    a, b = console_auth.hash_password(PASSWORD), console_auth.hash_password(PASSWORD)
    assert a != b and a.startswith("scrypt$15$8$1$") and PASSWORD not in a
    assert console_auth.verify_password(PASSWORD, a) and not console_auth.verify_password(PASSWORD + "x", a)
    assert not console_auth.verify_password(PASSWORD, None) and not console_auth.verify_password(PASSWORD, "junk")


async def test_cli_sets_a_password_that_signs_in(accounts, db_url):
    """`esimota staff password USER --password-stdin`: the account's own password; audited without it."""
    env = dict(os.environ, DATABASE_URL=db_url)
    env.pop("ESIMOTA_STAFF", None)
    run = subprocess.run([sys.executable, "-m", "esimota.cli", "staff", "password", "olga", "--password-stdin",
                          "--json"], input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    weak = subprocess.run([sys.executable, "-m", "esimota.cli", "staff", "password", "olga", "--password-stdin"],
                          input="short\n", env=env, capture_output=True, text=True, timeout=60)
    assert weak.returncode == 2 and "PASSWORD_WEAK" in weak.stderr
    token = await console_auth.sign_in(accounts, "olga", PASSWORD, "127.0.0.1")
    sess = await console_auth.session(accounts, token)
    assert sess.username == "olga" and sess.may("exception.handle") and not sess.may("client.manage")
    row = await accounts.fetchrow("SELECT actor, detail::text AS detail FROM audit_log WHERE action = 'staff.password'")
    assert row["actor"] == "staff:olga" and PASSWORD not in row["detail"]
    assert await accounts.fetchval("SELECT password_hash FROM staff_accounts WHERE username = 'olga'") != PASSWORD


async def test_another_account_password_needs_an_admin(accounts):
    with pytest.raises(PermissionDenied):
        await console_auth.set_password(accounts, "audra", PASSWORD, "olga")
    await console_auth.set_password(accounts, "audra", PASSWORD, "root")
    with pytest.raises(InvalidArgument):
        await console_auth.set_password(accounts, "audra", "audra-and-more-letters", "root")


async def test_throttled_per_account_then_per_address(accounts, monkeypatch):
    await console_auth.set_password(accounts, "olga", PASSWORD, "root")
    for _ in range(console_auth.MAX_FAILURES_ACCOUNT):
        with pytest.raises(Unauthenticated):
            await console_auth.sign_in(accounts, "olga", "wrong password!", "10.1.1.1")
    with pytest.raises(RateLimited) as exc:  # even the right password waits now
        await console_auth.sign_in(accounts, "olga", PASSWORD, "10.1.1.1")
    assert exc.value.reason == "SIGNIN_THROTTLED"
    monkeypatch.setattr(console_auth, "MAX_FAILURES_ADDRESS", 3)
    for name in ("nobody", "nemo", "nix"):  # one address trying many names
        with pytest.raises(Unauthenticated):
            await console_auth.sign_in(accounts, name, "whatever it is", "10.2.2.2")
    with pytest.raises(RateLimited):
        await console_auth.sign_in(accounts, "root", "anything at all", "10.2.2.2")
    audited = await accounts.fetchval("SELECT count(*) FROM audit_log WHERE action = 'console.signin_throttled'")
    assert audited == 2


async def test_sessions_end_by_sign_out_idle_password_disable_and_revoke(accounts):
    await console_auth.set_password(accounts, "olga", PASSWORD, "root")
    await console_auth.set_password(accounts, "audra", PASSWORD, "root")

    async def fresh(user: str) -> str:
        return await console_auth.sign_in(accounts, user, PASSWORD, "127.0.0.1")

    token = await fresh("olga")
    sess = await console_auth.session(accounts, token)
    await console_auth.sign_out(accounts, sess)
    assert await console_auth.session(accounts, token) is None
    token = await fresh("olga")
    # eight hours without a request pass (the idle clock is the session's last use)
    await accounts.execute("UPDATE console_sessions SET seen_at = now() - interval '8 hours 1 minute'")
    assert await console_auth.session(accounts, token) is None
    token = await fresh("olga")
    await console_auth.set_password(accounts, "olga", PASSWORD + "!", "root")
    assert await console_auth.session(accounts, token) is None
    token = await fresh("audra")
    await staff_auth.revoke_tokens(accounts, "audra", "root")
    assert await console_auth.session(accounts, token) is None
    await accounts.execute("SELECT pg_sleep(0.01)")
    token = await fresh("audra")
    await staff.disable(accounts, "audra", "root")
    assert await console_auth.session(accounts, token) is None
    with pytest.raises(Unauthenticated):
        await fresh("audra")


async def test_csrf_token_is_the_sessions_own(accounts):
    await console_auth.set_password(accounts, "audra", PASSWORD, "root")
    sess = await console_auth.session(accounts, await console_auth.sign_in(accounts, "audra", PASSWORD, "127.0.0.1"))
    console_auth.check_csrf(sess, sess.csrf)
    for forged in (None, "", sess.csrf[:-1] + "x"):
        with pytest.raises(PermissionDenied):
            console_auth.check_csrf(sess, forged)
    assert not sess.may("exception.handle") and sess.may("audit.read")
