"""The ISO 4217 list that decides which currencies Unibo takes."""

from __future__ import annotations

from gateway.iso4217 import CODES, is_iso4217

# The cryptocurrencies InTarget's document lists as supported: none is an ISO 4217 code, three-letter ones included.
CRYPTO = (
    *("BTC", "ETH", "USDT", "BNB", "SOL", "USDC", "XRP", "DOGE", "TON", "ADA"),
    *("SHIB", "AVAX", "TRX", "DOT", "LINK", "BCH", "UNI", "MATIC", "LTC", "NEAR"),
)


def test_codes_are_three_upper_case_letters() -> None:
    """Every code is three ASCII upper-case letters, as the event contract normalizes currencies."""
    assert all(len(code) == 3 and code.isascii() and code.isalpha() and code.isupper() for code in CODES)


def test_fiat_in_crypto_and_non_money_codes_out() -> None:
    """Common fiat currencies are in; crypto tickers, metals, test and fund codes are out."""
    assert all(is_iso4217(code) for code in ("EUR", "USD", "GBP", "BRL", "CAD", "JPY", "XOF", "XAF"))
    assert not any(is_iso4217(code) for code in CRYPTO)
    assert not any(is_iso4217(code) for code in ("XAU", "XTS", "XXX", "XDR", "USN", "eur", "EURO", ""))
