"""DP-SGD settings, the opacus wiring, and a lifetime privacy accountant.

opacus does the per-sample work: ``GradSampleModule`` computes per-sample gradients,
``DPOptimizer`` clips each to ``max_grad_norm`` and adds Gaussian noise of standard
deviation ``noise_multiplier * max_grad_norm``; its RDP or PRV accountant turns the
history of (noise multiplier, sample rate, steps) into an epsilon at a given delta.

The trainer (``node.trainer``) drives those pieces itself rather than through
``PrivacyEngine.make_private``: its data set shrinks when consent is withdrawn, so it
draws its own Poisson batches (sample rate = batch size / consented images, recomputed
every step) and reports each step to the accountant here.

``PrivacyAccountant`` is the node's lifetime budget: ``state()`` is plain data
(``AccountantState``, JSON-able via ``to_dict``) that the node checkpoints, and
``PrivacyAccountant.from_state`` restores it after a restart, so epsilon keeps growing
across restarts instead of silently starting from zero.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import torch
from torch import nn

from node.errors import PrivacyConfigError

__all__ = [
    "ACCOUNTANTS",
    "AccountantState",
    "DPConfig",
    "PrivacyAccountant",
    "make_private",
]

ACCOUNTANTS: Final = ("rdp", "prv")
AccountantName = Literal["rdp", "prv"]


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD parameters.

    ``noise_seed`` seeds the noise generator; leave it ``None`` in real use (the noise
    is then drawn from OS entropy: DP noise that anyone can regenerate protects
    nothing). Set it only for reproducible tests and benchmarks.
    """

    noise_multiplier: float
    max_grad_norm: float
    delta: float = 1e-5
    accountant: AccountantName = "rdp"
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise PrivacyConfigError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise PrivacyConfigError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not (0.0 < self.delta < 1.0):
            raise PrivacyConfigError(f"delta must be in (0, 1), got {self.delta}")
        if self.accountant not in ACCOUNTANTS:
            raise PrivacyConfigError(f"accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}")


@dataclass(frozen=True)
class AccountantState:
    """Everything the accountant knows, as plain data: checkpoint it as JSON."""

    mechanism: AccountantName
    history: tuple[tuple[float, float, int], ...]  # (noise multiplier, sample rate, steps)

    def to_dict(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "history": [list(h) for h in self.history]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountantState:
        """Inverse of ``to_dict``; raises ``PrivacyConfigError`` on malformed data."""
        try:
            mechanism = data["mechanism"]
            history = tuple(
                (float(noise), float(rate), int(steps)) for noise, rate, steps in data["history"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PrivacyConfigError("malformed privacy accountant state") from exc
        if mechanism not in ACCOUNTANTS:
            raise PrivacyConfigError(f"unknown accountant {mechanism!r}")
        for noise, rate, steps in history:
            if not (noise >= 0 and 0 < rate <= 1 and steps >= 1):
                raise PrivacyConfigError(f"invalid accountant entry {(noise, rate, steps)}")
        return cls(mechanism=mechanism, history=history)


class PrivacyAccountant:
    """Lifetime epsilon of one node, backed by an opacus accountant."""

    def __init__(self, mechanism: AccountantName = "rdp", delta: float = 1e-5) -> None:
        from opacus.accountants import create_accountant

        if mechanism not in ACCOUNTANTS:
            raise PrivacyConfigError(f"accountant must be one of {ACCOUNTANTS}, got {mechanism!r}")
        self.mechanism: AccountantName = mechanism
        self.delta = delta
        self._accountant = create_accountant(mechanism=mechanism)
        self._cached: float | None = None  # epsilon of the current history

    @classmethod
    def from_state(cls, state: AccountantState, delta: float) -> PrivacyAccountant:
        accountant = cls(state.mechanism, delta)
        accountant._accountant.history = [tuple(h) for h in state.history]
        accountant._cached = None
        return accountant

    def state(self) -> AccountantState:
        history = tuple((float(n), float(q), int(s)) for n, q, s in self._accountant.history)
        return AccountantState(mechanism=self.mechanism, history=history)

    @property
    def steps(self) -> int:
        return sum(int(s) for _, _, s in self._accountant.history)

    def step(self, noise_multiplier: float, sample_rate: float) -> None:
        """Record one noisy step at this sample rate (opacus merges equal runs)."""
        if not (0.0 < sample_rate <= 1.0):
            raise PrivacyConfigError(f"sample rate must be in (0, 1], got {sample_rate}")
        self._accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
        self._cached = None

    def epsilon_after(self, noise_multiplier: float, sample_rate: float, steps: int) -> float:
        """The total epsilon `steps` more steps at this rate would bring, without taking
        them: the same history the trainer would build (equal runs merged), so the same
        float. Lets a peer decide before training whether a round fits its budget."""
        if steps < 0 or not (0.0 < sample_rate <= 1.0):
            raise PrivacyConfigError(f"need steps >= 0 and a sample rate in (0, 1], got {steps}, {sample_rate}")
        if steps == 0:
            return self.epsilon()
        probe = PrivacyAccountant(self.mechanism, self.delta)
        probe._accountant.history = [tuple(h) for h in self._accountant.history]
        for _ in range(steps):
            probe.step(noise_multiplier, sample_rate)
        return probe.epsilon()

    def epsilon(self) -> float:
        """Total epsilon spent so far at ``delta`` (0.0 before the first step).

        A step without noise has no finite epsilon: ``inf`` is returned then, honestly.
        """
        history = self._accountant.history
        if not history:
            return 0.0
        if any(noise == 0 for noise, _, _ in history):
            return math.inf
        if self._cached is not None:
            return self._cached
        try:
            eps = float(self._accountant.get_epsilon(delta=self.delta))
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            raise PrivacyConfigError(f"{self.mechanism} accountant failed: {exc}") from exc
        self._cached = eps
        return eps


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    dp: DPConfig,
    expected_batch_size: int,
) -> tuple[nn.Module, Any]:
    """Wrap ``model`` in a ``GradSampleModule`` and ``optimizer`` in a ``DPOptimizer``.

    Rejects models opacus cannot handle (BatchNorm...) with ``PrivacyConfigError``. The
    wrapper's state dict has ``_module.``-prefixed keys: keep using ``model`` itself for
    weights. The noise generator is seeded from ``dp.noise_seed`` or OS entropy.
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from opacus.validators import ModuleValidator

    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise PrivacyConfigError(f"model cannot be trained with DP-SGD: {problems[0]}")
    seed = dp.noise_seed if dp.noise_seed is not None else int.from_bytes(os.urandom(8), "little")
    generator = torch.Generator().manual_seed(seed)
    wrapped = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    dp_optimizer = DPOptimizer(
        optimizer,
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.max_grad_norm,
        expected_batch_size=expected_batch_size,
        loss_reduction="mean",
        generator=generator,
    )
    return wrapped, dp_optimizer
