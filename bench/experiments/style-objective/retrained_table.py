"""Issue 23's done-when figures for the retrained models, from results/retrained/eval.json.

    python bench/experiments/style-objective/retrained_table.py   → results/retrained/table.md

eval.json holds what `run.py eval-models` measured (see findings.md): for each style, the shipped model
(weights/NAME.safetensors), the one it replaced (NAME_v1) and any trial (a width-16 net, the probes of heavier or deeper objectives), each on
chicago and hoovertowernight, at the study's main geometry (photos at short side 170, Gatys cells of
the chosen setting beside them) and at training's (short side 256). All scored with the chosen
objective. Per model and geometry the table gives the means over the two photos; the ratios are
against NAME_v1 on the same photos (deep taps: done when ≤ 0.5) and against Gatys at the chosen
setting (content at fire4: done when ≤ 2).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RETIRED = "_v1"
VARIANT = "_small"  # every model here is a small variant: kandinsky_small, kandinsky_small_v1, kandinsky_small_w16, ...


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    records = json.loads((HERE / "results" / "retrained" / "eval.json").read_text())
    latest: dict[tuple, dict] = {}
    for r in records:  # a model measured again replaces its earlier figures
        latest[(r["style"], r["protocol"], Path(r["model"]).stem, r["content"])] = r
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for (style, protocol, stem, _), r in sorted(latest.items()):
        groups[(style, protocol, stem)].append(r)

    def figures(style: str, protocol: str, stem: str) -> dict | None:
        rs = groups.get((style, protocol, stem))
        if not rs:
            return None
        gatys = [r["gatys_terms"]["content"] for r in rs if r.get("gatys_terms")]
        return {"deep": mean([r["deep_style_loss"] for r in rs]), "swd": mean([r["swd_lab"] for r in rs]),
                "content": mean([r["content_fire4"] for r in rs]), "total": mean([r["terms"]["total"] for r in rs]),
                "gatys_content": mean(gatys) if len(gatys) == len(rs) else None}

    lines = ["# Retrained style models: issue 23's yardsticks", "",
             "Means over chicago and hoovertowernight, scored with the chosen objective (today's taps, style weight "
             "×3, style image at 384 px). deep = style loss at fire6–fire9 (not in the objective); ratio to the "
             "replaced model NAME_v1 (done when ≤ 0.5). SWD = sliced Wasserstein colour distance to the painting "
             "in Lab. content = fire4 content loss; at the main geometry beside Gatys at the chosen setting "
             "(done when ≤ 2×). Written by retrained_table.py from eval.json (run.py eval-models; AMD EPYC, "
             "1 thread; figures do not depend on the CPU beyond float rounding).", ""]
    for protocol, title in (("final", "training geometry (short side 256)"), ("main", "main geometry (short side 170)")):
        lines += [f"## {title}", "", "| model | deep | deep vs v1 | SWD (v1) | content (v1) | content vs Gatys | total |",
                  "|---|---|---|---|---|---|---|"]
        for style, proto, stem in sorted(groups):
            if proto != protocol or stem.endswith(RETIRED):
                continue
            name = stem[:stem.index(VARIANT) + len(VARIANT)]  # a trial (NAME_w16, NAME_sw0.003, ...) vs NAME_v1
            new, old = figures(style, protocol, stem), figures(style, protocol, name + RETIRED)
            if old is None:
                continue
            vs_gatys = f"{new['content'] / new['gatys_content']:.2f}×" if new["gatys_content"] else "–"
            lines.append(f"| {stem} | {new['deep']:.3g} | {new['deep'] / old['deep']:.2f} | {new['swd']:.2f} "
                         f"({old['swd']:.2f}) | {new['content']:.0f} ({old['content']:.0f}) | {vs_gatys} | "
                         f"{new['total']:.0f} |")
        lines.append("")
    out = HERE / "results" / "retrained" / "table.md"
    out.write_text("\n".join(lines))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
