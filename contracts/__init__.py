"""medgossip contracts package."""
