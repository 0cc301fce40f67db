"""`python -m node.cli`: the same as the `medgossip` console script."""

from node.cli import main

main()
