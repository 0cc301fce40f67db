"""medgossip privacy audit: patient-level membership inference on this hospital's own
peer model, from local files only. The logic is node.privacy_audit's; this module
parses and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from node.cli._boundary import fail
from node.cli._chain import out, print_json
from node.cli._options import JsonOutput

if TYPE_CHECKING:
    from node.privacy_audit import AttackResult, AuditReport, Estimate

app = typer.Typer(
    no_args_is_help=True,
    help="Measure what this peer's model reveals about its own patients (reads local files, sends nothing).",
)


@app.command()
def audit(
    config: Path = typer.Option(..., "--config", "-c", help="The peer's node.toml: its model, seed, held-out split, data_dir and checkpoint_dir."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", "-d", help="The peer's checkpoint folder (default: the config's checkpoint_dir)."),
    reference_models: int = typer.Option(4, "--reference-models", "-k", help="Reference models for the calibrated (offline LiRA) attack: 0 (loss attack only) or >= 2."),
    reference_steps: int = typer.Option(0, "--reference-steps", min=0, help="Local steps of each reference model (0: as many as the peer took, rounds x local_steps, at most 1000)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", "-b", help="Bootstrap resamples of patients for the 95% intervals (>= 100)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the reference halves and of the bootstrap."),
    json_output: JsonOutput = False,
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write the ROC curves to this PNG file."),
) -> None:
    """Patient-level membership inference on the model of the peer's last completed round.

    Members are the consented patients of the peer's training split, non-members its
    held-out patients (the split is by patient, as the peer made it); withdrawn patients
    are compared with the same non-members. Two attacks: the mean loss over a patient's
    images, and a calibrated one (offline LiRA) against reference models trained here
    from the genesis on random halves of the consented patients. Reads node.toml, the
    checkpoint and the data folder; contacts no chain and no peer.

    Example: medgossip privacy audit --config hospital-a/node.toml --plot roc.png
    """
    from node.config import load_config
    from node.privacy_audit import AuditOptions, run_audit

    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot {plot} must name a .png file")
    options = AuditOptions(reference_models=reference_models, reference_steps=reference_steps,
                           bootstrap=bootstrap, seed=seed)
    report = run_audit(load_config(config), checkpoint_dir, options)
    if plot is not None:
        from node.privacy_audit.plot import write_roc_png

        write_roc_png(report, plot)
    if json_output:
        print_json({**report.to_json(), "plot": str(plot) if plot is not None else None})
        return
    show(report, plot)


def _ci(e: Estimate, star: str = "") -> str:
    return f"{e.value:.3f}{star}\n[{e.low:.2f}, {e.high:.2f}]"


def _group(r: AttackResult) -> str:
    """The compared group (every comparison is against the held-out patients)."""
    return r.comparison.split("-vs-")[0]


def _row(r: AttackResult) -> tuple[str, ...]:
    sep = r.separation
    if sep is None:
        return (r.attack, _group(r), "-", "[dim]not measured\n(see below)[/dim]", "", "")
    star = "" if sep.fpr_resolved else "*"
    return (r.attack, _group(r), f"{sep.positives} / {sep.negatives}", _ci(sep.auc), _ci(sep.advantage),
            _ci(sep.tpr_at_low_fpr, star))


def show(report: AuditReport, plot: Path | None) -> None:
    """The table for humans, and how to read it."""
    table = Table(title=f"patient-level membership inference, round {report.round} ({report.checkpoint})",
                  caption="each figure: the estimate, and under it its 95% bootstrap interval",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("attack", "patients", "n", "AUC", "advantage", "TPR@1%FPR"):
        table.add_column(column, no_wrap=True)
    for result in report.results:
        table.add_row(*_row(result))
    out.print(table)
    o = report.options
    out.print(f"members: {report.members} consented patients of the training split; non-members: "
              f"{report.nonmembers} held-out patients (n: patients compared / held-out); withdrawn: {report.withdrawn} (data: {escape(report.data_dir)}). "
              f"Reference models: {o.reference_models} x {o.reference_steps} steps; {o.bootstrap} bootstrap resamples.",
              soft_wrap=True)
    out.print("Reading it: AUC 0.5 and advantage 0 = the attack cannot tell the groups apart; "
              "AUC >= 0.7 = the model remembers which patients it trained on. This is measured, not proven: "
              "a low figure means these attacks failed, not that every attack would.", soft_wrap=True)
    if any(r.separation is not None and not r.separation.fpr_resolved for r in report.results):
        out.print("* fewer than 100 non-members: no threshold has an FPR between 0 and 1%, so this is the TPR at "
                  "FPR 0 (the share of patients scored above every non-member).", soft_wrap=True)
    for reason in dict.fromkeys(r.skipped for r in report.results if r.separation is None and r.skipped):
        out.print(f"not measured: {escape(reason)}", soft_wrap=True)
    if plot is not None:
        out.print(f"ROC curves: {escape(str(plot))}")
