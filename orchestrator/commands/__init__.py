"""One module per `forkdiff` subcommand; each defines register(subparsers) and sets func."""
