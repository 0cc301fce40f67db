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
/// - per subject commitment, one flag for a withdrawal by token (it binds every node)
///   and one per node for a withdrawal by that node as custodian (it binds that node
///   only: a node cannot withdraw, nor block the withdrawal of, another hospital's
///   patients);
/// - the block of the latest withdrawal, which every record must have seen;
/// - one slot per node (status, sample cap, last round, revocation block, privacy
///   budget and epsilon spent), plus its peer ID.
///
/// What a registered node can record is bounded here, on chain: one contribution per
/// round with rounds strictly increasing per node, a sample count within the cap the
/// admin set for it, a cumulative differential-privacy epsilon within the budget the
/// admin set for it, and nothing once revoked. Since a revoked node cannot record,
/// every record on chain was made before its author's revocation: a delta is valid
/// if and only if it is recorded. Every peer, and every late joiner, decides validity
/// from the chain alone, the same way.
contract AuditLedger {
    /// @dev Lifecycle of a node address. Revocation is final: a revoked address
    /// cannot be registered again (register the node under a new key instead).
    enum NodeStatus {
        None,
        Active,
        Revoked
    }

    /// @dev The first six fields pack into one storage slot (8 + 32 + 64 + 64 + 40 + 40
    /// = 248 bits), read and written once by `recordContribution`; `peerId` takes its
    /// own slots. Epsilons are in micro-epsilon (epsilon times 1e6): uint40 holds over
    /// a million epsilon, far beyond any meaningful budget.
    struct Node {
        NodeStatus status;
        uint32 sampleCap;
        uint64 lastRound;
        uint64 revokedAtBlock;
        uint40 epsilonBudgetMicros;
        uint40 epsilonSpentMicros;
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
    /// @dev The block of the latest withdrawal (any kind): a record must have seen it.
    uint64 private _lastWithdrawalBlock;
    mapping(bytes32 subjectCommitment => bool) private _withdrawnByToken;
    mapping(bytes32 subjectCommitment => mapping(address node => bool)) private _withdrawnByNode;

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
    /// @notice This subject commitment was already withdrawn by token, or by this sender.
    error AuditLedgerAlreadyWithdrawn(bytes32 subjectCommitment);
    /// @notice The genesis model can be set only once.
    error AuditLedgerGenesisAlreadySet(bytes32 modelHash);
    /// @notice A sample cap of zero was given (a node must be allowed some samples).
    error AuditLedgerZeroSampleCap();
    /// @notice `round` is not above the last round `node` recorded (rounds start at 1
    /// and strictly increase per node).
    error AuditLedgerStaleRound(address node, uint64 round, uint64 lastRound);
    /// @notice A consent withdrawal was mined after the block up to which the recording
    /// node had read withdrawals: it must check the round against it and send again.
    error AuditLedgerWithdrawalNotSeen(uint64 withdrawalsSeenAt, uint64 lastWithdrawalBlock);
    /// @notice `sampleCount` is above the cap the admin set for `node`.
    error AuditLedgerSampleCountOverCap(address node, uint32 sampleCount, uint32 sampleCap);
    /// @notice Recording `epsilonMicros` on top of the `spentMicros` that `node` already
    /// recorded would exceed the privacy budget (`budgetMicros`) the admin set for it.
    error AuditLedgerPrivacyBudgetExceeded(
        address node, uint64 spentMicros, uint64 epsilonMicros, uint64 budgetMicros
    );

    /// @notice A node was registered with its libp2p peer ID.
    event NodeRegistered(address indexed node, bytes peerId);
    /// @notice A node's sample cap was set, at registration or changed since.
    event SampleCapSet(address indexed node, uint32 sampleCap);
    /// @notice A node's differential-privacy budget (micro-epsilon) was set, at
    /// registration or changed since.
    event PrivacyBudgetSet(address indexed node, uint40 epsilonBudgetMicros);
    /// @notice A node was revoked; it can no longer record or withdraw. The block of
    /// this event is the node's `revokedAtBlock`.
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
        _requireActive(msg.sender, _nodes[msg.sender].status);
        _;
    }

    /// @notice The deployer becomes the consortium admin.
    constructor() {
        _admin = msg.sender;
    }

    /// @notice Registers a hospital node with its sample cap and privacy budget.
    /// @param node The node's Ethereum address (derived from the same secp256k1 key
    /// as its peer ID).
    /// @param peerId The node's libp2p peer ID as raw multihash bytes.
    /// @param sampleCap The most samples one contribution of the node may declare: the
    /// agreed size of that hospital's contribution.
    /// @param epsilonBudgetMicros The most differential-privacy epsilon (times 1e6) the
    /// node may spend over all its contributions; 0 allows only epsilon-0 records (a
    /// node that trains without DP).
    /// @dev Requirements: caller is the admin; `node` is non-zero and was never
    /// registered; `peerId` is non-empty; `sampleCap` is non-zero.
    /// Emits {NodeRegistered}, then {SampleCapSet}, then {PrivacyBudgetSet}.
    function registerNode(
        address node,
        bytes calldata peerId,
        uint32 sampleCap,
        uint40 epsilonBudgetMicros
    ) external onlyAdmin {
        if (node == address(0)) revert AuditLedgerZeroAddress();
        if (peerId.length == 0) revert AuditLedgerEmptyPeerId();
        if (sampleCap == 0) revert AuditLedgerZeroSampleCap();
        Node storage entry = _nodes[node];
        if (entry.status != NodeStatus.None) revert AuditLedgerAlreadyRegistered(node);
        entry.status = NodeStatus.Active;
        entry.sampleCap = sampleCap;
        entry.epsilonBudgetMicros = epsilonBudgetMicros;
        entry.peerId = peerId;
        emit NodeRegistered(node, peerId);
        emit SampleCapSet(node, sampleCap);
        emit PrivacyBudgetSet(node, epsilonBudgetMicros);
    }

    /// @notice Changes an active node's sample cap; it bounds the node's future
    /// contributions only (past records keep their counts).
    /// @dev Requirements: caller is the admin; `node` is active; `sampleCap` is
    /// non-zero. Emits {SampleCapSet}.
    function setSampleCap(address node, uint32 sampleCap) external onlyAdmin {
        if (sampleCap == 0) revert AuditLedgerZeroSampleCap();
        Node storage entry = _nodes[node];
        _requireActive(node, entry.status);
        entry.sampleCap = sampleCap;
        emit SampleCapSet(node, sampleCap);
    }

    /// @notice Changes an active node's privacy budget (micro-epsilon); it bounds the
    /// node's future contributions only. It may be set below what the node has spent
    /// already: that stops the node's further DP records (epsilon above 0) and
    /// leaves its past records and its spent total as they are.
    /// @dev Requirements: caller is the admin; `node` is active.
    /// Emits {PrivacyBudgetSet}.
    function setPrivacyBudget(address node, uint40 epsilonBudgetMicros) external onlyAdmin {
        Node storage entry = _nodes[node];
        _requireActive(node, entry.status);
        entry.epsilonBudgetMicros = epsilonBudgetMicros;
        emit PrivacyBudgetSet(node, epsilonBudgetMicros);
    }

    /// @notice Revokes a node for good: it can no longer record contributions or
    /// withdraw consent. Its past records stay, and stay valid: they were all made
    /// before this block, which is kept as the node's `revokedAtBlock`.
    /// @dev Requirements: caller is the admin; `node` is active. Emits {NodeRevoked}.
    function revokeNode(address node) external onlyAdmin {
        Node storage entry = _nodes[node];
        _requireActive(node, entry.status);
        entry.status = NodeStatus.Revoked;
        entry.revokedAtBlock = uint64(block.number);
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

    /// @notice Records one contribution of the calling node: at most one per round,
    /// rounds strictly increasing (the first is 1), within the node's sample cap and
    /// privacy budget. Only an active node records, so a recorded delta is valid: it
    /// was recorded before any revocation of its author.
    /// The node's epsilon spent grows by `epsilonMicros`: it is the sum of the
    /// epsilons of all its records, so a node that records each round's increase of
    /// its accountant's total has its total on chain.
    /// @param deltaHash keccak256 of the canonical delta payload bytes.
    /// @param baseModelHash Hash of the model the delta applies to.
    /// @param round The node's local round; above every round it recorded before.
    /// @param sampleCount Number of training samples behind the delta; at most the
    /// node's sample cap.
    /// @param dataRoot Merkle root of the subject commitments used.
    /// @param epsilonMicros Differential-privacy epsilon this contribution spent,
    /// times 1e6 (0: trained without DP, or spent nothing).
    /// @dev Requirements: caller is an active node; `deltaHash` is non-zero and not
    /// recorded yet; `round` is above the caller's last round; `sampleCount` is at
    /// most the caller's sample cap; `epsilonMicros` is 0, or the caller's epsilon
    /// spent plus `epsilonMicros` is at most its budget. Emits {ContributionRecorded}.
    function recordContribution(
        bytes32 deltaHash,
        bytes32 baseModelHash,
        uint64 round,
        uint32 sampleCount,
        bytes32 dataRoot,
        uint64 epsilonMicros,
        uint64 withdrawalsSeenAt
    ) external {
        Node storage author = _nodes[msg.sender];
        _requireActive(msg.sender, author.status);
        if (deltaHash == bytes32(0)) revert AuditLedgerZeroHash();
        (uint64 lastRound, uint32 sampleCap) = (author.lastRound, author.sampleCap);
        if (round <= lastRound) revert AuditLedgerStaleRound(msg.sender, round, lastRound);
        if (sampleCount > sampleCap) {
            revert AuditLedgerSampleCountOverCap(msg.sender, sampleCount, sampleCap);
        }
        _requireWithdrawalsSeen(withdrawalsSeenAt);
        uint40 spent = _spentAfter(author, epsilonMicros);
        Contribution storage entry = _contributions[deltaHash];
        if (entry.author != address(0)) revert AuditLedgerDuplicateContribution(deltaHash);
        author.lastRound = round;
        author.epsilonSpentMicros = spent;
        _contributions[deltaHash] = Contribution(msg.sender, round, sampleCount);
        emit ContributionRecorded(
            deltaHash, msg.sender, round, baseModelHash, sampleCount, dataRoot, epsilonMicros
        );
    }

    /// @notice Withdraws a data subject's consent, as the custodian node. It binds the
    /// calling node only (peers obey a withdrawal by token, or their own): so another
    /// node's withdrawal by commitment can neither withdraw nor block the withdrawal of
    /// a hospital's patient.
    /// @param subjectCommitment keccak256 of the subject's consent token.
    /// @dev Requirements: caller is an active node; `subjectCommitment` is non-zero and
    /// not withdrawn by token nor by the caller yet. Emits {ConsentWithdrawn} with
    /// `byToken = false`.
    function withdrawConsent(bytes32 subjectCommitment) external onlyActiveNode {
        if (subjectCommitment == bytes32(0)) revert AuditLedgerZeroHash();
        mapping(address => bool) storage byNode = _withdrawnByNode[subjectCommitment];
        if (_withdrawnByToken[subjectCommitment] || byNode[msg.sender]) {
            revert AuditLedgerAlreadyWithdrawn(subjectCommitment);
        }
        byNode[msg.sender] = true;
        _lastWithdrawalBlock = uint64(block.number);
        emit ConsentWithdrawn(subjectCommitment, msg.sender, false);
    }

    /// @notice Withdraws a data subject's consent by revealing the subject's consent
    /// token; anyone holding the token may send (or relay) this.
    /// @param token The 32-byte consent token; its keccak256 is the subject commitment.
    /// It binds every node, whichever node withdrew the commitment before.
    /// @dev Requirements: `token` is non-zero; the commitment is not withdrawn by token
    /// yet. Emits {ConsentWithdrawn} with `byToken = true`.
    function withdrawConsentWithToken(bytes32 token) external {
        if (token == bytes32(0)) revert AuditLedgerZeroHash();
        bytes32 subjectCommitment = keccak256(abi.encodePacked(token));
        if (_withdrawnByToken[subjectCommitment]) revert AuditLedgerAlreadyWithdrawn(subjectCommitment);
        _withdrawnByToken[subjectCommitment] = true;
        _lastWithdrawalBlock = uint64(block.number);
        emit ConsentWithdrawn(subjectCommitment, msg.sender, true);
    }

    /// @notice The consortium admin.
    function admin() external view returns (address) {
        return _admin;
    }

    /// @notice The genesis model hash, or zero when not set.
    function genesisModel() external view returns (bytes32) {
        return _genesisModel;
    }

    /// @notice What the ledger knows of `node`: whether it is active, its peer ID
    /// (empty if never registered; kept after revocation), its sample cap, the last
    /// round it recorded (0: none yet), the block of its revocation (0: not revoked),
    /// its privacy budget and the epsilon it has spent (both micro-epsilon; spent may
    /// be above the budget only if the admin lowered the budget since).
    function nodeInfo(address node)
        external
        view
        returns (
            bool active,
            bytes memory peerId,
            uint32 sampleCap,
            uint64 lastRound,
            uint64 revokedAtBlock,
            uint40 epsilonBudgetMicros,
            uint40 epsilonSpentMicros
        )
    {
        Node storage entry = _nodes[node];
        return (
            entry.status == NodeStatus.Active,
            entry.peerId,
            entry.sampleCap,
            entry.lastRound,
            entry.revokedAtBlock,
            entry.epsilonBudgetMicros,
            entry.epsilonSpentMicros
        );
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

    /// @notice Whether the subject's consent was withdrawn by token (binding every node).
    function isWithdrawn(bytes32 subjectCommitment) external view returns (bool) {
        return _withdrawnByToken[subjectCommitment];
    }

    /// @notice Whether the subject's consent binds `node`: withdrawn by token, or by
    /// `node` itself as custodian.
    function isWithdrawnFor(bytes32 subjectCommitment, address node) external view returns (bool) {
        return _withdrawnByToken[subjectCommitment] || _withdrawnByNode[subjectCommitment][node];
    }

    /// @dev The node's epsilon spent once `epsilonMicros` is added; reverts over its
    /// budget. In uint256, spent (< 2**40) + epsilonMicros (< 2**64) cannot overflow, and
    /// the sum fits uint40 once it is known to be within the uint40 budget.
    function _spentAfter(Node storage author, uint64 epsilonMicros) private view returns (uint40) {
        (uint40 budget, uint40 spent) = (author.epsilonBudgetMicros, author.epsilonSpentMicros);
        if (epsilonMicros == 0) return spent;
        uint256 total = uint256(spent) + epsilonMicros;
        if (total > budget) revert AuditLedgerPrivacyBudgetExceeded(msg.sender, spent, epsilonMicros, budget);
        return uint40(total);
    }

    /// @dev Reverts unless every withdrawal was mined by block `seenAt`.
    function _requireWithdrawalsSeen(uint64 seenAt) private view {
        uint64 lastWithdrawal = _lastWithdrawalBlock;
        if (lastWithdrawal > seenAt) revert AuditLedgerWithdrawalNotSeen(seenAt, lastWithdrawal);
    }

    /// @dev Reverts unless `status` (of `node`) is Active, naming why.
    function _requireActive(address node, NodeStatus status) private pure {
        if (status != NodeStatus.Active) {
            if (status == NodeStatus.Revoked) revert AuditLedgerNodeRevoked(node);
            revert AuditLedgerNotRegistered(node);
        }
    }
}
