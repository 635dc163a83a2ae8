"""The ``serve`` console script.

Placeholder, on purpose: the inference server (``GET /ping``, ``POST /invocations`` on port
8080, contract section 2) is a separate, later piece of work. Until then ``serve`` fails loudly
instead of pretending to serve.
"""

from __future__ import annotations

NOT_IMPLEMENTED_MESSAGE = (
    "serve: serving is not implemented in this version of the Studiolo toolkit "
    "(only `train` is); an image built with it cannot host an endpoint yet"
)


def main() -> None:
    # SystemExit with a string prints it to stderr and exits with status 1.
    raise SystemExit(NOT_IMPLEMENTED_MESSAGE)


if __name__ == "__main__":
    main()
