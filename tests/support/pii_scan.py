"""The raw PII of a customer database, to look for on the cloud side: every phone, ID number,
bank card and mobile number in a note (digits, full-width ones folded), every email, and names
of three characters or more (shorter ones collide with ordinary words)."""

from __future__ import annotations

import re

from local_emulator.customer_db import CustomerDatabase

_RUN = re.compile(r"[0-9Xx](?:[0-9Xx \-]{0,3}[0-9Xx])*")
_FULL_WIDTH = {ord(c): ord(c) - 0xFEE0 for c in "０１２３４５６７８９Ｘ"}


def _numbers(text: str) -> set[str]:
    text = text.translate(_FULL_WIDTH)
    return {re.sub(r"[ \-]", "", run).upper() for run in _RUN.findall(text)}


class RawPii:
    """The raw values of `customer` (`rows` keeps them, for proving the scan finds them)."""

    def __init__(self, customer: CustomerDatabase) -> None:
        self.rows = customer.run(
            "SELECT phone, id_card, bank_card, email, name, note, city FROM customers"
        )
        self.numbers: set[str] = set()
        self.words: set[str] = set()
        cities = {row[6] for row in self.rows}
        for phone, id_card, bank_card, email, name, note, _city in self.rows:
            self.numbers |= {n for n in _numbers(phone) if len(n) >= 11}
            self.numbers |= {id_card.upper(), re.sub(r"\D", "", bank_card)}
            self.numbers |= {n for n in _numbers(note) if len(n) >= 11}
            self.words.add(email.lower())
            if len(name) >= 3 and name not in cities:
                self.words.add(name)
        self._lengths = sorted({len(n) for n in self.numbers})

    def found_in(self, text: str) -> set[str]:
        """The raw values that appear in `text`."""
        found = {
            run[i : i + size]
            for run in _numbers(text)
            for size in self._lengths
            for i in range(len(run) - size + 1)
            if run[i : i + size] in self.numbers
        }
        lowered = text.lower()
        return found | {word for word in self.words if word.lower() in lowered}
