// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title AuditLedger: the audit trail of a medgossip consortium
/// @notice Records which registered hospital node contributed which model delta in
/// which round, and which data subjects withdrew their consent. No personal data is
/// stored: subjects appear only as commitments (keccak256 of a random consent token).
/// @dev Storage is kept to what a peer must check with one `call`:
/// - one 32-byte slot per contribution (author, round, sample count), keyed by the
///   delta hash; the rest of a contribution (base model, data root, epsilon) is in the
///   `ContributionRecorded` event only;
/// - one flag per withdrawn subject commitment;
/// - one status slot (and the peer ID) per node.
contract AuditLedger {
    /// @dev Lifecycle of a node address. Revocation is final: a revoked address
    /// cannot be registered again (register the node under a new key instead).
    enum NodeStatus {
        None,
        Active,
        Revoked
    }

    struct Node {
        NodeStatus status;
        bytes peerId;
    }

    /// @dev Packs into exactly one storage slot: 160 + 64 + 32 bits.
    struct Contribution {
        address author;
        uint64 round;
        uint32 sampleCount;
    }

    address private immutable _admin;
    bytes32 private _genesisModel;
    mapping(address node => Node) private _nodes;
    mapping(bytes32 deltaHash => Contribution) private _contributions;
    mapping(bytes32 subjectCommitment => bool) private _withdrawn;

    /// @notice The caller is not the consortium admin.
    error AuditLedgerNotAdmin(address caller);
    /// @notice The address is not a registered node.
    error AuditLedgerNotRegistered(address node);
    /// @notice The address was registered once and revoked since.
    error AuditLedgerNodeRevoked(address node);
    /// @notice The address is (or was) already registered.
    error AuditLedgerAlreadyRegistered(address node);
    /// @notice The zero address was given where a node address is required.
    error AuditLedgerZeroAddress();
    /// @notice An empty peer ID was given.
    error AuditLedgerEmptyPeerId();
    /// @notice A hash argument is zero.
    error AuditLedgerZeroHash();
    /// @notice This delta hash was already recorded.
    error AuditLedgerDuplicateContribution(bytes32 deltaHash);
    /// @notice This subject commitment was already withdrawn.
    error AuditLedgerAlreadyWithdrawn(bytes32 subjectCommitment);
    /// @notice The genesis model can be set only once.
    error AuditLedgerGenesisAlreadySet(bytes32 modelHash);

    /// @notice A node was registered with its libp2p peer ID.
    event NodeRegistered(address indexed node, bytes peerId);
    /// @notice A node was revoked; it can no longer record or withdraw.
    event NodeRevoked(address indexed node);
    /// @notice The consortium's genesis model was fixed.
    event GenesisModelSet(bytes32 indexed modelHash);
    /// @notice A node recorded one model contribution.
    event ContributionRecorded(
        bytes32 indexed deltaHash,
        address indexed node,
        uint64 indexed round,
        bytes32 baseModelHash,
        uint32 sampleCount,
        bytes32 dataRoot,
        uint64 epsilonMicros
    );
    /// @notice A data subject's consent was withdrawn, by a custodian node or by the
    /// holder of the subject's consent token (`byToken`).
    event ConsentWithdrawn(bytes32 indexed subjectCommitment, address indexed by, bool byToken);

    modifier onlyAdmin() {
        if (msg.sender != _admin) revert AuditLedgerNotAdmin(msg.sender);
        _;
    }

    modifier onlyActiveNode() {
        NodeStatus status = _nodes[msg.sender].status;
        if (status != NodeStatus.Active) {
            if (status == NodeStatus.Revoked) revert AuditLedgerNodeRevoked(msg.sender);
            revert AuditLedgerNotRegistered(msg.sender);
        }
        _;
    }

    /// @notice The deployer becomes the consortium admin.
    constructor() {
        _admin = msg.sender;
    }

    /// @notice Registers a hospital node.
    /// @param node The node's Ethereum address (derived from the same secp256k1 key
    /// as its peer ID).
    /// @param peerId The node's libp2p peer ID as raw multihash bytes.
    /// @dev Requirements: caller is the admin; `node` is non-zero and was never
    /// registered; `peerId` is non-empty. Emits {NodeRegistered}.
    function registerNode(address node, bytes calldata peerId) external onlyAdmin {
        if (node == address(0)) revert AuditLedgerZeroAddress();
        if (peerId.length == 0) revert AuditLedgerEmptyPeerId();
        Node storage entry = _nodes[node];
        if (entry.status != NodeStatus.None) revert AuditLedgerAlreadyRegistered(node);
        entry.status = NodeStatus.Active;
        entry.peerId = peerId;
        emit NodeRegistered(node, peerId);
    }

    /// @notice Revokes a node: it can no longer record contributions or withdraw
    /// consent. Its past records stay.
    /// @dev Requirements: caller is the admin; `node` is active. Emits {NodeRevoked}.
    function revokeNode(address node) external onlyAdmin {
        Node storage entry = _nodes[node];
        if (entry.status == NodeStatus.Revoked) revert AuditLedgerNodeRevoked(node);
        if (entry.status != NodeStatus.Active) revert AuditLedgerNotRegistered(node);
        entry.status = NodeStatus.Revoked;
        emit NodeRevoked(node);
    }

    /// @notice Fixes the hash of the consortium's genesis model, once.
    /// @dev Requirements: caller is the admin; `modelHash` is non-zero; not set yet.
    /// Emits {GenesisModelSet}.
    function setGenesisModel(bytes32 modelHash) external onlyAdmin {
        if (modelHash == bytes32(0)) revert AuditLedgerZeroHash();
        bytes32 current = _genesisModel;
        if (current != bytes32(0)) revert AuditLedgerGenesisAlreadySet(current);
        _genesisModel = modelHash;
        emit GenesisModelSet(modelHash);
    }

    /// @notice Records one contribution of the calling node.
    /// @param deltaHash keccak256 of the canonical delta payload bytes.
    /// @param baseModelHash Hash of the model the delta applies to.
    /// @param round The node's local round.
    /// @param sampleCount Number of training samples behind the delta.
    /// @param dataRoot Merkle root of the subject commitments used.
    /// @param epsilonMicros Differential-privacy epsilon spent, times 1e6.
    /// @dev Requirements: caller is an active node; `deltaHash` is non-zero and not
    /// recorded yet. Emits {ContributionRecorded}.
    function recordContribution(
        bytes32 deltaHash,
        bytes32 baseModelHash,
        uint64 round,
        uint32 sampleCount,
        bytes32 dataRoot,
        uint64 epsilonMicros
    ) external onlyActiveNode {
        if (deltaHash == bytes32(0)) revert AuditLedgerZeroHash();
        Contribution storage entry = _contributions[deltaHash];
        if (entry.author != address(0)) revert AuditLedgerDuplicateContribution(deltaHash);
        _contributions[deltaHash] = Contribution(msg.sender, round, sampleCount);
        emit ContributionRecorded(
            deltaHash, msg.sender, round, baseModelHash, sampleCount, dataRoot, epsilonMicros
        );
    }

    /// @notice Withdraws a data subject's consent, as the custodian node.
    /// @param subjectCommitment keccak256 of the subject's consent token.
    /// @dev Requirements: caller is an active node; `subjectCommitment` is non-zero
    /// and not withdrawn yet. Emits {ConsentWithdrawn} with `byToken = false`.
    function withdrawConsent(bytes32 subjectCommitment) external onlyActiveNode {
        if (subjectCommitment == bytes32(0)) revert AuditLedgerZeroHash();
        _withdraw(subjectCommitment, false);
    }

    /// @notice Withdraws a data subject's consent by revealing the subject's consent
    /// token; anyone holding the token may send (or relay) this.
    /// @param token The 32-byte consent token; its keccak256 is the subject commitment.
    /// @dev Requirements: `token` is non-zero; the commitment is not withdrawn yet.
    /// Emits {ConsentWithdrawn} with `byToken = true`.
    function withdrawConsentWithToken(bytes32 token) external {
        if (token == bytes32(0)) revert AuditLedgerZeroHash();
        _withdraw(keccak256(abi.encodePacked(token)), true);
    }

    /// @notice The consortium admin.
    function admin() external view returns (address) {
        return _admin;
    }

    /// @notice The genesis model hash, or zero when not set.
    function genesisModel() external view returns (bytes32) {
        return _genesisModel;
    }

    /// @notice Whether `node` is an active node, and its peer ID (empty if never
    /// registered; kept after revocation).
    function nodeInfo(address node) external view returns (bool active, bytes memory peerId) {
        Node storage entry = _nodes[node];
        return (entry.status == NodeStatus.Active, entry.peerId);
    }

    /// @notice Who recorded `deltaHash`, in which round, with how many samples;
    /// `author` is zero when it was never recorded.
    function contribution(bytes32 deltaHash)
        external
        view
        returns (address author, uint64 round, uint32 sampleCount)
    {
        Contribution storage entry = _contributions[deltaHash];
        return (entry.author, entry.round, entry.sampleCount);
    }

    /// @notice Whether the subject's consent was withdrawn.
    function isWithdrawn(bytes32 subjectCommitment) external view returns (bool) {
        return _withdrawn[subjectCommitment];
    }

    function _withdraw(bytes32 subjectCommitment, bool byToken) private {
        if (_withdrawn[subjectCommitment]) revert AuditLedgerAlreadyWithdrawn(subjectCommitment);
        _withdrawn[subjectCommitment] = true;
        emit ConsentWithdrawn(subjectCommitment, msg.sender, byToken);
    }
}
