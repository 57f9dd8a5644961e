"""One module per `prlkit` sub-command; each wires library functions to argparse, nothing more."""
