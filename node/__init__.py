"""medgossip node package."""
