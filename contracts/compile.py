"""Compile AuditLedger.sol into the committed artifact.

    python -m contracts.compile            # (re)write contracts/artifacts/AuditLedger.json
    python -m contracts.compile --check    # exit 1 if the committed artifact is stale

Uses py-solc-x's `compile_standard` over the npm `solc` package (wasm, works
offline) through `solc-shim.js`, because `solcx.install_solc()` needs the internet and
`solcjs --standard-json` prints a warning before its JSON. The compiler version and
evmVersion are pinned; running a node needs only the committed artifact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

CONTRACT_NAME = "AuditLedger"
SOLC_VERSION = "0.8.37"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_PATH = PACKAGE_DIR / f"{CONTRACT_NAME}.sol"
SHIM_PATH = PACKAGE_DIR / "solc-shim.js"
ARTIFACT_PATH = PACKAGE_DIR / "artifacts" / f"{CONTRACT_NAME}.json"


class CompileError(RuntimeError):
    """The compiler is missing, the wrong version, or rejected the source."""


@dataclass(frozen=True)
class Artifact:
    """What running a node needs: ABI, bytecode, and where they came from."""

    contract_name: str
    abi: list[dict[str, object]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    evm_version: str
    optimizer_runs: int
    source_sha256: str

    def to_json(self) -> str:
        payload = {
            "contractName": self.contract_name,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "compiler": {
                "version": self.compiler_version,
                "evmVersion": self.evm_version,
                "optimizerRuns": self.optimizer_runs,
            },
            "sourceHash": f"sha256:{self.source_sha256}",
        }
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Artifact:
        data = json.loads(text)
        return cls(
            contract_name=data["contractName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            compiler_version=data["compiler"]["version"],
            evm_version=data["compiler"]["evmVersion"],
            optimizer_runs=int(data["compiler"]["optimizerRuns"]),
            source_sha256=data["sourceHash"].removeprefix("sha256:"),
        )


def source_sha256(source_path: Path = SOURCE_PATH) -> str:
    """sha256 hex of the Solidity source bytes (what the artifact records)."""
    return hashlib.sha256(source_path.read_bytes()).hexdigest()


def load_artifact(path: Path = ARTIFACT_PATH) -> Artifact:
    """The committed artifact (no compiler needed)."""
    return Artifact.from_json(path.read_text(encoding="utf-8"))


def compiler_available() -> bool:
    """True when `node` and the npm `solc` package are installed."""
    return (
        shutil.which("node") is not None
        and (PACKAGE_DIR.parent / "node_modules" / "solc" / "package.json").exists()
    )


def compile_contract(source_path: Path = SOURCE_PATH) -> Artifact:
    """Compile the source with the pinned compiler and settings."""
    import solcx
    from solcx.exceptions import SolcError

    if not compiler_available():
        raise CompileError("node or the npm `solc` package is missing; run `make install`")
    try:
        version = str(solcx.wrapper.get_solc_version(SHIM_PATH, with_commit_hash=True))
    except (SolcError, OSError) as exc:
        raise CompileError(f"cannot run the solc shim: {exc}") from exc
    if not version.startswith(SOLC_VERSION):
        raise CompileError(f"solc {SOLC_VERSION} is pinned, found {version}")

    source = source_path.read_text(encoding="utf-8")
    standard_input = {
        "language": "Solidity",
        "sources": {source_path.name: {"content": source}},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }
    try:
        output = solcx.compile_standard(standard_input, solc_binary=SHIM_PATH)
    except SolcError as exc:
        raise CompileError(str(exc)) from exc
    compiled = output["contracts"][source_path.name][CONTRACT_NAME]
    return Artifact(
        contract_name=CONTRACT_NAME,
        abi=compiled["abi"],
        bytecode="0x" + compiled["evm"]["bytecode"]["object"],
        deployed_bytecode="0x" + compiled["evm"]["deployedBytecode"]["object"],
        compiler_version=version,
        evm_version=EVM_VERSION,
        optimizer_runs=OPTIMIZER_RUNS,
        source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.compile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only verify that the committed artifact matches the source")
    args = parser.parse_args(argv)
    try:
        artifact = compile_contract()
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        committed = load_artifact() if ARTIFACT_PATH.exists() else None
        if committed != artifact:
            print(f"{ARTIFACT_PATH.name} is stale: run `python -m contracts.compile`",
                  file=sys.stderr)
            return 1
        print(f"{ARTIFACT_PATH.name} is up to date ({artifact.compiler_version})")
        return 0
    ARTIFACT_PATH.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT_PATH.write_text(artifact.to_json(), encoding="utf-8")
    print(f"wrote {ARTIFACT_PATH.relative_to(PACKAGE_DIR.parent)} "
          f"(solc {artifact.compiler_version}, evm {artifact.evm_version}, "
          f"{len(artifact.deployed_bytecode) // 2 - 1} bytes deployed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
