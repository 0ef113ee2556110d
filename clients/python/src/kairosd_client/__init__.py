"""kairosd_client: a standard-library-only Python client for kairosd.

Points (``put``, ``put_many``), queries (``query``), streams of events with a
retention policy (``create_stream`` → :class:`Stream` ``.upload``), file imports
(``upload_file``) and keyed tables with frozen versions (``create_table`` →
:class:`Table`), over kairosd's KairosDB-compatible HTTP API. Every refusal raises
:class:`KairosdError` with the server's error list.
"""

from .client import Client
from .errors import KairosdError
from .query import Series, aggregator
from .streams import Stream
from .tables import Table

__all__ = ["Client", "KairosdError", "Series", "Stream", "Table", "aggregator"]
__version__ = "0.1.0"
