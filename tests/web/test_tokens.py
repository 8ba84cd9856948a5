"""Access tokens (gateway.web.tokens): minted, verified, expired, forged."""

from __future__ import annotations

import pytest

from gateway.web.tokens import MAX_TTL_S, TokenSigner, derive_secret

NOW = 1_800_000_000.0
SIGNER = TokenSigner(b"k" * 32)


@pytest.mark.parametrize(
    ("ttl", "checked_at", "valid"),
    [
        (30, NOW, True),
        (30, NOW + 29.9, True),
        (30, NOW + 30, False),
        (30, NOW + 3600, False),
        (MAX_TTL_S, NOW + MAX_TTL_S - 1, True),
    ],
)
def test_token_is_valid_until_it_expires(ttl: int, checked_at: float, valid: bool) -> None:
    """A minted token verifies until its expiry and not after."""
    assert SIGNER.verify(SIGNER.mint(NOW, ttl), checked_at) is valid


def test_tokens_are_unique_and_bound_to_the_secret() -> None:
    """Two tokens differ; another secret rejects them."""
    first, second = SIGNER.mint(NOW, 30), SIGNER.mint(NOW, 30)
    assert first != second
    assert not TokenSigner(b"x" * 32).verify(first, NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 3600)),  # later expiry
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature
        lambda t: "gw2" + t[3:],  # version
        lambda t: t.rpartition(".")[0],  # no signature
        lambda t: "",
        lambda t: t + "." + "a" * 300,
        lambda t: "gw1.notanumber.abc.def",
    ],
)
def test_tampered_tokens_are_rejected(tamper: object) -> None:
    """Any change to a token, or garbage, fails verification."""
    assert callable(tamper)
    assert not SIGNER.verify(tamper(SIGNER.mint(NOW, 30)), NOW)


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL_S + 1])
def test_ttl_is_bounded(ttl: int) -> None:
    """Tokens live 1 s to an hour."""
    with pytest.raises(ValueError, match="ttl_s"):
        SIGNER.mint(NOW, ttl)


def test_secret_is_shared_by_processes_with_the_same_configuration() -> None:
    """Workers with the same environment secret, or the same client tokens, accept each
    other's tokens; different configurations do not; with neither, each gets its own."""
    assert derive_secret("s3cret", {"a"}) == derive_secret("s3cret", {"b"})
    assert derive_secret(None, {"a", "b"}) == derive_secret(None, {"b", "a"})
    assert derive_secret(None, {"a"}) != derive_secret(None, {"a", "b"})
    assert derive_secret("s3cret", set()) != derive_secret("other", set())
    assert derive_secret(None, set()) != derive_secret(None, set())
    token = TokenSigner(derive_secret(None, {"a", "b"})).mint(NOW, 30)
    assert TokenSigner(derive_secret(None, {"b", "a"})).verify(token, NOW)


def test_secret_never_shows_in_repr() -> None:
    """A signer's repr does not carry its secret."""
    assert "kkkk" not in repr(SIGNER)
