"""medgossip data ingest | make-demo | tokens: DICOM in, de-identified data folder out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from node.cli._boundary import err, fail
from node.cli._options import JsonOutput

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Imaging data of this node: ingest DICOM (de-identify, pseudonymise, consent "
        "tokens, manifest), build the demo corpus, show consent tokens."
    ),
)

out = Console(highlight=False)


def _check_out_dir(out_dir: Path) -> None:
    """--out must be a folder (or not exist yet): checked before reading anything."""
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir} is a file: give a folder (it is created if absent)")


@app.command()
def ingest(
    src: Path = typer.Argument(..., help="Folder (walked recursively) or single file of DICOM data."),
    labels: Path = typer.Option(..., "--labels", help="CSV with a header: a key column and a 'label' column (integers)."),
    out_dir: Path = typer.Option(..., "--out", help="Data folder to create or update (DATA_DIR)."),
    label_key: str = typer.Option("SOPInstanceUID", "--label-key", help="What the CSV key column holds: SOPInstanceUID, AccessionNumber or path (relative to SRC)."),
    json_output: JsonOutput = False,
    show_all: bool = typer.Option(False, "--all", help="List every reported file (default: the first 30)."),
) -> None:
    """De-identify every DICOM image under SRC into DATA_DIR.

    Writes DATA_DIR/manifest.json, DATA_DIR/images/..., DATA_DIR/report.json and the
    private DATA_DIR/linkage.json (mode 0600: original patient ID -> pseudonym ->
    consent token). Files that cannot be used (unreadable, no image, unsupported
    transfer syntax, no label ...) are listed with the reason, never fatal. Re-running
    on the same source adds nothing. Exits non-zero only if DATA_DIR ends up with no
    image at all.

    Example:
      medgossip data ingest demo/hospital-00 --labels demo/labels.csv --out run/data-0
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from node.data.ingest import LABEL_KEYS
    from node.data.ingest import ingest as run_ingest

    if label_key not in LABEL_KEYS:
        fail(f"--label-key must be one of {', '.join(LABEL_KEYS)}, not {label_key!r}")
    _check_out_dir(out_dir)
    with Progress(
        TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=json_output,
    ) as bar:
        task = bar.add_task("ingest", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_ingest(src, labels, out_dir, label_key=label_key, progress=progress)

    if json_output:
        print(json.dumps(report.to_json(), indent=1))
    else:
        summary = Table(title=f"ingest {src} -> {out_dir}", show_header=False)
        summary.add_column("what")
        summary.add_column("count", justify="right")
        for name, value in (
            ("source files", report.source_files),
            ("ingested now", report.ingested),
            ("already present", report.already_present),
            ("reported (not ingested)", len(report.reported)),
            ("images in DATA_DIR", report.images),
            ("patients in DATA_DIR", report.patients),
            ("seconds", f"{report.seconds:.1f}"),
        ):
            summary.add_row(name, str(value))
        out.print(summary)
        if report.reported:
            table = Table(title="not ingested (full list in report.json)")
            table.add_column("file", overflow="fold")
            table.add_column("reason")
            table.add_column("detail", overflow="fold")
            shown = report.reported if show_all else report.reported[:30]
            for item in shown:
                table.add_row(item.path, item.reason, item.detail)
            if len(shown) < len(report.reported):
                table.add_row(f"... {len(report.reported) - len(shown)} more (--all)", "", "")
            out.print(table)
    if report.nothing_ingested:
        fail(f"nothing could be ingested from {src}: see {out_dir / 'report.json'} for why each file was refused")


@app.command("make-demo")
def make_demo(
    out_dir: Path = typer.Option(..., "--out", help="Folder to create (must be empty or absent)."),
    hospitals: int = typer.Option(4, "--hospitals", help="Number of simulated hospitals."),
    alpha: float = typer.Option(0.5, "--alpha", help="Dirichlet concentration of the label split (smaller = less IID)."),
    seed: int = typer.Option(0, "--seed", help="Seed: same seed, same files byte for byte."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of images held out as an IID test set (DIR/test)."),
    images: Optional[int] = typer.Option(None, "--images", help="Use a seeded subset of this many digits (default: all 1,797)."),
    json_output: JsonOutput = False,
) -> None:
    """Write the demo corpus: sklearn's 8x8 digits as DICOM, one folder per hospital.

    DIR/hospital-00 ... (synthetic patients with names, IDs, birth dates, institution,
    so de-identification has work to do), DIR/test (held-out IID test set) and
    DIR/labels.csv (SOPInstanceUID,label for every file).

    Example:
      medgossip data make-demo --hospitals 4 --out demo
    """
    from node.data.demo_corpus import make_demo as run_make_demo

    _check_out_dir(out_dir)
    with err.status("writing DICOM files"):
        corpus = run_make_demo(out_dir, hospitals, alpha=alpha, seed=seed,
                               test_fraction=test_fraction, max_images=images)
    if json_output:
        print(json.dumps({
            "root": str(corpus.root),
            "labels_csv": str(corpus.labels_csv),
            "test_dir": str(corpus.test_dir),
            "test_images": corpus.test_images,
            "hospitals": [
                {"dir": str(d), "images": n, "patients": p}
                for d, n, p in zip(corpus.hospitals, corpus.images_per_hospital,
                                   corpus.patients_per_hospital)
            ],
        }, indent=1))
        return
    table = Table(title=f"demo corpus in {corpus.root} (alpha {alpha}, seed {seed})")
    table.add_column("folder")
    table.add_column("images", justify="right")
    table.add_column("patients", justify="right")
    for d, n, p in zip(corpus.hospitals, corpus.images_per_hospital, corpus.patients_per_hospital):
        table.add_row(d.name, str(n), str(p))
    table.add_row(corpus.test_dir.name, str(corpus.test_images), "")
    out.print(table)
    out.print(f"labels: {corpus.labels_csv}")


@app.command()
def tokens(
    data_dir: Path = typer.Argument(..., help="A data folder written by `medgossip data ingest`."),
    patient_id: Optional[str] = typer.Option(None, "--patient-id", help="Only this original patient ID."),
    pseudonym: Optional[str] = typer.Option(None, "--pseudonym", help="Only this pseudonym."),
    json_output: JsonOutput = False,
) -> None:
    """Show consent tokens (to hand to patients) and subject commitments.

    Reads the private linkage table; the output holds secrets: print it only where the
    custodian may see it. Original patient IDs are shown only to select a patient.
    """
    from node.data.linkage import LinkageTable

    rows = LinkageTable.load(data_dir).rows
    if patient_id is not None:
        rows = tuple(r for r in rows if r.original_patient_id == patient_id)
    if pseudonym is not None:
        rows = tuple(r for r in rows if r.pseudonym == pseudonym)
    if (patient_id is not None or pseudonym is not None) and not rows:
        fail(f"no such patient in {data_dir}: check --patient-id / --pseudonym")
    if json_output:
        print(json.dumps([
            {"pseudonym": r.pseudonym, "commitment": "0x" + r.commitment.hex(), "token": r.token_hex}
            for r in rows
        ], indent=1))
        return
    table = Table(title=f"consent tokens of {data_dir} (SECRET)")
    table.add_column("pseudonym")
    table.add_column("subject commitment", overflow="fold")
    table.add_column("token", overflow="fold")
    for r in rows:
        table.add_row(r.pseudonym, "0x" + r.commitment.hex(), r.token_hex)
    out.print(table)
