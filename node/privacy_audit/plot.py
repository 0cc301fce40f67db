"""The ROC plot of an audit as a PNG: one panel per comparison, one curve per attack."""

from __future__ import annotations

import io
from pathlib import Path

from gossip.files import atomic_write
from node.privacy_audit.report import COMPARISONS, AuditReport

__all__ = ["write_roc_png"]


def write_roc_png(report: AuditReport, path: Path) -> None:
    """Draw every measured comparison's ROC curves (linear axes, the chance diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(COMPARISONS)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.6), squeeze=False)
    try:
        for ax, name in zip(axes[0], names):
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC 0.5)")
            for result in (r for r in report.results if r.comparison == name):
                sep = result.separation
                if sep is None:
                    continue
                fpr, tpr = result.roc
                ax.plot(fpr, tpr,  # points at every distinct threshold: ties are the diagonal segments
                        label=f"{result.attack}: AUC {sep.auc.value:.2f} [{sep.auc.low:.2f}, {sep.auc.high:.2f}]")
            skipped = next((r.skipped for r in report.results if r.comparison == name and r.skipped), "")
            if skipped:
                ax.text(0.5, 0.35, "not measured:\n" + skipped.replace(", has", ",\nhas"),
                        ha="center", fontsize=8, wrap=True)
            positive, negative = COMPARISONS[name]
            ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel=f"false positive rate ({negative})",
                   ylabel=f"true positive rate ({positive})", title=name)
            ax.legend(loc="lower right", fontsize=8)
        fig.suptitle(f"patient-level membership inference, round {report.round} "
                     f"({report.members} members, {report.nonmembers} non-members, {report.withdrawn} withdrawn)",
                     fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write(path, buffer.getvalue(), mode=0o666)
