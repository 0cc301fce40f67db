"""medgossip devnet package."""
