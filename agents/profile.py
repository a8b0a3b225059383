"""A buyer's checkout profile: fake but valid contact details, the same on every run.

A real buyer's name and address are not in any clickstream (and must not be): the replay
fills the checkout form from this profile, and the LLM policy fills it the same way, as a
browser's autofill would. The model decides *whether* and *when* to fill a field and place
the order; the personal text itself comes from here, so the small model spends nothing on
learning to write e-mail addresses.

Example:
    >>> fields, country = checkout_details("547469497")
    >>> sorted(fields)
    ['field-address', 'field-city', 'field-email', 'field-name', 'field-postcode']
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["CHECKOUT_FIELDS", "ProfileStream", "checkout_details", "stable_hash"]

# chosen by a hash of the buyer id; every combination is valid for the shop's form
_FIRST = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Robin",
          "Avery", "Quinn", "Drew")
_LAST = ("Smith", "Garcia", "Chen", "Kumar", "Müller", "Silva", "Okafor", "Novak", "Tanaka",
         "Rossi", "Dubois", "Larsen")
_STREETS = ("Market Street", "Station Road", "Park Avenue", "Mill Lane", "High Street",
            "Church Road", "Lake View", "Harbour Way")
_CITIES = (("Springfield", "US"), ("Leeds", "GB"), ("Pune", "IN"), ("Lyon", "FR"),
           ("Hamburg", "DE"), ("Osaka", "JP"), ("Toronto", "CA"), ("Perth", "AU"),
           ("Curitiba", "BR"), ("Chengdu", "CN"))


#: The text fields of the bundled shop's checkout form that a profile fills.
CHECKOUT_FIELDS = ("field-email", "field-name", "field-address", "field-city", "field-postcode")


def stable_hash(*parts: Any) -> int:
    """A stable 63-bit hash (Python's hash() is salted per process)."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def checkout_details(buyer_id: str) -> tuple[dict[str, str], str]:
    """Fake but valid checkout details for a buyer, the same on every run.

    Returns:
        (field id -> text to type, country label to select).

    Example:
        >>> fields, country = checkout_details("547469497")
        >>> fields == checkout_details("547469497")[0], "@example." in fields["field-email"]
        (True, True)
    """
    from storefront_mock.app import COUNTRIES

    h = stable_hash("contact", buyer_id)
    first, last = _FIRST[h % len(_FIRST)], _LAST[(h >> 8) % len(_LAST)]
    city, country = _CITIES[(h >> 16) % len(_CITIES)]
    ascii_last = last.replace("ü", "ue")
    return ({"field-email": f"{first.lower()}.{ascii_last.lower()}{h % 1000}@example.com",
             "field-name": f"{first} {last}",
             "field-address": f"{1 + (h >> 24) % 199} {_STREETS[(h >> 32) % len(_STREETS)]}",
             "field-city": city,
             "field-postcode": f"{10000 + (h >> 40) % 89999}"}, COUNTRIES[country])


class ProfileStream:
    """One checkout profile per episode, keyed by a seed and the episodes since it was set.

    The policies that fill checkout forms (:class:`~agents.policies.llm.LLMPolicy`,
    :class:`~agents.policies.rule_based.RuleBasedBuyer`) draw from one each and reseed it in
    their ``seed(seed)``, which the simulation runners call before every buyer: a buyer then
    types the same profile on any worker, local or Ray, whatever that worker ran before.

    Example:
        >>> s = ProfileStream("rule", seed=5)
        >>> first = s.next()
        >>> s.next() != first, (s.reseed(5), s.next())[1] == first
        (True, True)
    """

    def __init__(self, prefix: str, seed: int = 0):
        self.prefix = prefix
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self._seed, self._n = int(seed), 0

    def next(self) -> tuple[dict[str, str], str]:
        """The next episode's ``(field id -> text, country label)``."""
        self._n += 1
        return checkout_details(f"{self.prefix}-{self._seed}-{self._n}")
