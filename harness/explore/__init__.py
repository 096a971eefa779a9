"""`dino-harness explore`: search the case space for mistakes nobody listed, shrink each.

Hypothesis draws case tables from the same key schema as the catalogue (``space``), inside
the user's ``--assume`` guarantees (``assumptions``); each is judged exactly as ``run``
judges a case; failures are grouped by the quantity that failed and its likely cause,
one finding per mistake (``findings``); Hypothesis shrinks each to a minimal case
(``search``), which is written as a TOML case file and rerun from it (``casefile``,
``run``). Nothing here renders: the report does.

=================  ==========================================================
``assumptions``    ``--assume`` words → :class:`Assumptions`
``space``          one Hypothesis strategy per case key → case tables
``findings``       signatures, grouping, merging, one exception type per finding
``search``         the Hypothesis rounds, the budget, the memo
``casefile``       a shrunk case as a TOML file that loads as the same case
``run``            kinds to search, the search, the files, the reruns
=================  ==========================================================
"""

from .assumptions import Assumptions, parse
from .findings import Finding, Signature, signature_of
from .run import Exploration, explore, kinds_to_search, likely_cause
from .search import Limits, Progress
from .space import Space

__all__ = ["Assumptions", "Exploration", "Finding", "Limits", "Progress", "Signature", "Space",
           "explore", "kinds_to_search", "likely_cause", "parse", "signature_of"]
