// The Hardhat network node that medgossip's ledger tests also run on (devnet/hardhat.py
// passes this file with --config): a second EVM (EDR), so "any EVM chain" is tested on
// more than anvil. Hardhat's defaults are kept where they match anvil's: chain id 31337,
// the "test test ... junk" mnemonic (so anvil's first dev key is funded here too) and
// automine (one block per transaction).
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      // `hardhat node` logs every request by default: thousands per test run
      loggingEnabled: false,
    },
  },
};
