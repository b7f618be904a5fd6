"""``python -m resilient_http.testing``: run the MockServer in its own process."""

from resilient_http.testing.process import main

raise SystemExit(main())
