"""Which non-default skops types the scikit-learn catalog needs, and which of them the reviewed policy does not cover.

Run `python -m tools.skops_types` after upgrading scikit-learn, scipy or skops; exit code 1 means the policy needs a review.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import skops.io

from sealserve.trust.policy.trusted_types import PARTIAL, PARTIAL_FUNCTIONS, TRUSTED_TYPES, refused_types
from tools.sklearn_catalog import Fitted, fitted_estimators, skipped


@dataclass
class Survey:
    """Each type skops does not trust by default → the catalog entries needing it; likewise for what the policy refuses."""

    needed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    refused: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def file_types(entry: Fitted) -> tuple[list[str], list[str]]:
    """(types skops would refuse by default, those the sealserve policy refuses) for this estimator's skops file."""
    data = skops.io.dumps(entry.estimator)
    untrusted = sorted(skops.io.get_untrusted_types(data=data))
    return untrusted, refused_types(untrusted, data)


def survey(entries: Iterable[Fitted]) -> Survey:
    result = Survey()
    for entry in entries:
        untrusted, refused = file_types(entry)
        for name in untrusted:
            result.needed[name].append(entry.name)
        for name in refused:
            result.refused[name].append(entry.name)
    return result


def report(result: Survey) -> None:
    needed = dict(sorted(result.needed.items()))
    print(f"{len(needed)} types beyond skops' defaults are needed by the catalog ('!' = refused by the policy):")
    for name, users in needed.items():
        covered = name in TRUSTED_TYPES or (name == PARTIAL and not any(r.startswith(PARTIAL) for r in result.refused))
        shown = ", ".join(users[:5]) + (f", … ({len(users)} in all)" if len(users) > 5 else "")
        print(f" {' ' if covered else '!'} {name}: {shown}")
    unused = sorted(set(TRUSTED_TYPES) - set(needed))
    print(f"\nTRUSTED_TYPES lists {len(TRUSTED_TYPES)} names; {len(unused)} of them no catalog entry needs (listed for completeness).")
    print(f"{PARTIAL} is accepted only around: {', '.join(PARTIAL_FUNCTIONS)}.")
    if result.refused:
        print("\nRefused by sealserve.trust.policy.trusted_types — review each before listing it:")
        for name, users in sorted(result.refused.items()):
            print(f"  {name}  (needed by {', '.join(users)})")
    print(f"\nSkipped ({len(skipped())}):")
    for name, reason in skipped().items():
        print(f"  {name}: {reason}")


def main() -> int:
    result = survey(fitted_estimators())
    report(result)
    return 1 if result.refused else 0


if __name__ == "__main__":
    sys.exit(main())
