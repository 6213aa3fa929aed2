"""Reports of the paper's timing table: Markdown beside the paper's Titan X figures, a log-log PNG
plot, and the files, each naming the machine that ran it."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from livestyle.benchmarks.machine import machine_label
from livestyle.benchmarks.paper import EXTRAPOLATED_MARK, PAPER_FEEDFORWARD, PAPER_GATYS, BenchReport
from livestyle.files import atomic_output, write_json_and_markdown

def _fmt_s(seconds: float, extrapolated: bool = False) -> str:
    text = f"{seconds:.3g}" if seconds < 1 else f"{seconds:.2f}"
    return (EXTRAPOLATED_MARK + text) if extrapolated else text


def table_markdown(report: dict) -> str:
    """The paper-shaped table (Markdown) from a report dict: paper rows beside ours, per size and engine."""
    iterations = [int(n) for n in report["settings"]["iterations"]]
    head = (["image size", "source"] + [f"Gatys {n} it (s)" for n in iterations] + ["feed-forward (s)"]
            + [f"speedup {n} it" for n in iterations] + ["feed-forward peak memory"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ours_label = machine_label(report["machine"])
    for row in report["rows"]:
        size = row["size"]
        if size in PAPER_GATYS:
            paper_g = PAPER_GATYS[size]
            ff = PAPER_FEEDFORWARD[size]
            cells = [f"{size}²", "paper (Titan X)"]
            cells += [_fmt_s(paper_g[n]) if n in paper_g else "–" for n in iterations]
            cells += [_fmt_s(ff)] + [f"{paper_g[n] / ff:.0f}×" if n in paper_g else "–" for n in iterations] + ["–"]
            lines.append("| " + " | ".join(cells) + " |")
        extrapolated = row["gatys"]["extrapolated"]
        for ff in row["feedforward"] or [None]:
            cells = [f"{size}²", f"ours ({ff['engine'] if ff else 'no engine'})"]
            cells += [_fmt_s(row["gatys"]["seconds"][str(n)], extrapolated) for n in iterations]
            if ff:
                cells += [_fmt_s(ff["median_s"])]
                cells += [(EXTRAPOLATED_MARK if extrapolated else "")
                          + f"{row['speedup'][ff['engine']][str(n)]:.0f}×" for n in iterations]
                cells += [f"{ff['peak_mb']:.0f} MiB" if ff.get("peak_mb") is not None else "–"]
            else:
                cells += ["–"] * (2 + len(iterations))
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"Ours: {ours_label}; loss network {report['settings']['loss_net']}, weights: "
             f"{report['settings']['loss_net_weights']}; optimiser {report['settings']['optimizer']}; "
             f"feed-forward = median of ≥3 runs after warm-up, batch 1, transform net width "
             f"{report['settings']['width']}, {report['settings']['blocks']} residual blocks, random weights; "
             f"peak memory: the process's peak resident set during the engine's warm-up (CUDA: torch's peak "
             f"allocation), the loss network and Gatys buffers included."]
    load, cores = report["machine"].get("load_average_1m"), report["machine"].get("cpu_cores")
    if load is not None and cores and load > 0.5 * cores:
        notes.append(f"Load average when the run started: {load} on {cores} cores — other work shared the CPU, "
                     "so CPU timings here are slower than this machine alone would give.")
    if any(r["gatys"]["extrapolated"] for r in report["rows"]):
        n = report["rows"][0]["gatys"]["measured_iterations"]
        notes.append(f"{EXTRAPOLATED_MARK} EXTRAPOLATED: Gatys times (and the speedups from them) are "
                     f"{n} measured iterations scaled linearly, not full runs.")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def report_markdown(report: dict) -> str:
    """A whole Markdown report: title, machine, the table, settings."""
    m = report["machine"]
    title = "Gatys vs feed-forward timing (Johnson et al. 2016, Table 1)"
    if any(r["gatys"]["extrapolated"] for r in report["rows"]):
        title += " — EXTRAPOLATED Gatys times"
    lines = [f"# {title}", "", f"Run {report['created']} on **{machine_label(m)}**.", "",
             table_markdown(report), "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in m.items() if k != "libraries"]
    lines += ["- libraries: " + ", ".join(f"{k} {v}" for k, v in m.get("libraries", {}).items()), "",
              "## Settings", "", "```json", json.dumps(report["settings"], indent=1), "```", ""]
    return "\n".join(lines)


def plot_png(report: dict, path: str | os.PathLike) -> None:
    """Log-log plot of seconds vs image size: Gatys per iteration count and feed-forward, ours and the paper's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rows = report["rows"]
    sizes = [r["size"] for r in rows]
    iterations = [int(n) for n in report["settings"]["iterations"]]
    extrapolated = any(r["gatys"]["extrapolated"] for r in rows)
    colours = ["tab:red", "tab:orange", "tab:olive", "tab:brown", "tab:pink"]
    for colour, n in zip(colours * 4, iterations):
        label = f"Gatys {n} it, ours" + (" (extrapolated)" if extrapolated else "")
        ax.plot(sizes, [r["gatys"]["seconds"][str(n)] for r in rows], "o-", color=colour, label=label)
        paper = [(s, PAPER_GATYS[s][n]) for s in sorted(PAPER_GATYS) if n in PAPER_GATYS[s]]
        if paper:
            ax.plot(*zip(*paper), "s--", color=colour, alpha=0.5, label=f"Gatys {n} it, paper")
    engines = [ff["engine"] for ff in rows[0]["feedforward"]] if rows else []
    for colour, engine in zip(["tab:blue", "tab:cyan", "tab:purple", "tab:green"] * 4, engines):
        points = [(r["size"], ff["median_s"]) for r in rows for ff in r["feedforward"] if ff["engine"] == engine]
        ax.plot(*zip(*points), "o-", color=colour, label=f"feed-forward, ours ({engine})")
    ax.plot(sorted(PAPER_FEEDFORWARD), [PAPER_FEEDFORWARD[s] for s in sorted(PAPER_FEEDFORWARD)],
            "s--", color="tab:blue", alpha=0.5, label="feed-forward, paper")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(set(sizes) | set(PAPER_FEEDFORWARD)))
    ax.set_xticklabels([str(s) for s in sorted(set(sizes) | set(PAPER_FEEDFORWARD))])
    ax.set_xlabel("image size (pixels per side)")
    ax.set_ylabel("seconds")
    ax.set_title(f"ours: {machine_label(report['machine'])}\npaper: GTX Titan X", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(str(path), format="png")


def report_stem(report: dict) -> str:
    """A file name stem: bench-<gpu or cpu>-<loss net>-<YYYYmmdd-HHMMSS>[-extrapolated]."""
    m = report["machine"]
    name = m.get("gpu") or f"cpu-{m['cpu']}-{m['cpu_cores']}c"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    stamp = re.sub(r"[^0-9]", "", report["created"])[:14]
    stamp = f"{stamp[:8]}-{stamp[8:]}"
    extrapolated = "-extrapolated" if any(r["gatys"]["extrapolated"] for r in report["rows"]) else ""
    return f"bench-{slug}-{report['settings']['loss_net']}-{stamp}{extrapolated}"


def write_reports(report: BenchReport | dict, folder: str | os.PathLike, stem: str | None = None, *,
                  plot: bool = True) -> list[Path]:
    """Write <stem>.json, <stem>.md and (``plot``) <stem>.png into ``folder`` (created), each atomically."""
    data = report.to_dict() if isinstance(report, BenchReport) else report
    stem = stem or report_stem(data)
    paths = write_json_and_markdown(folder, stem, data, report_markdown(data))
    if plot:
        paths.append(Path(folder) / f"{stem}.png")
        with atomic_output(paths[2]) as tmp:
            plot_png(data, tmp)
    return paths
