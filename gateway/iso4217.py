"""ISO 4217 currency codes in circulation (reference data for vendors that take ISO-4217 only, e.g. Unibo)."""

from __future__ import annotations

from typing import Final

# ISO 4217 list one, currencies in use. Left out on purpose: fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI,
# UYW), precious metals (XAG, XAU, XPD, XPT), units of account (XBA-XBD, XDR, XSU, XUA), the test code XTS and "no
# currency" XXX: none is money a player holds. Crypto tickers are not ISO 4217 (BTC, ETH, SOL, TON, USDT... even
# the three-letter ones), which is why a pattern cannot decide this and a list does.
_TABLE: Final = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
    CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ
    GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
    LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN
    PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW
    ZWG
"""
CODES: Final = frozenset(_TABLE.split())


def is_iso4217(code: str) -> bool:
    """Whether `code` is an ISO 4217 currency in circulation (upper case, as the event contract normalizes it)."""
    return code in CODES
