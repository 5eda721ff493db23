"""Markdown tables from the benchmarks' JSON (for BENCHMARKS.md).

Usage: ``python bench/report.py [bench/results/*.json ...]``: prints one
section per file it recognises (encoder_chips, identify, e2e_load), with the
machine and load average each was measured under.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _load(doc: dict[str, Any]) -> str:
    facts = doc.get("machine_facts") or doc.get("machine") or {}
    load = facts.get("load_average")
    return " / ".join(f"{v:.2f}" for v in load) if load else "n/a"


def encoder(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    out = [f"Peak: {m['peak_formula']}. Load average at the end: {_load(doc)}.", ""]
    chips = doc["chips"]
    out += [
        f"(a) chips: {chips['real_chips']} real chips; max |ours - dlib| = "
        f"{chips['max_abs_diff_vs_dlib']:.2g}",
        "",
        "| batch | ours faces/s | ours ms/face | dlib faces/s | dlib ms/face | ratio "
        f"| GFLOP/s | % of peak ({m['peak_gflops']:.0f}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in chips["rows"]:
        out.append(
            f"| {r['batch']} | {r['ours_faces_per_s']:.0f} | {r['ours_ms_per_face']:.2f} "
            f"| {r['dlib_faces_per_s']:.1f} | {r['dlib_ms_per_face']:.1f} | {r['ratio']:.0f}x "
            f"| {r['ours_gflops']:.0f} | {100 * r['ours_fraction_of_peak']:.0f}% |"
        )
    pipe = doc["pipeline"]
    if "rows" in pipe:
        out += [
            "",
            f"(b) whole path over {pipe['images']} photos ({pipe['source']}):",
            "",
            "| image batch | ours images/s | ms/image | faces | images without a face |",
            "|---|---|---|---|---|",
        ]
        for r in pipe["rows"]:
            out.append(
                f"| {r['image_batch']} | {r['images_per_s']:.1f} | {r['ms_per_image']:.1f} "
                f"| {r['faces']} | {r['images_without_face']} |"
            )
        out.append(
            f"| face_recognition, one at a time | {pipe['face_recognition_images_per_s']:.1f} "
            f"| {1000 / pipe['face_recognition_images_per_s']:.1f} "
            f"| {pipe['face_recognition_faces']} "
            f"| {pipe['face_recognition_images_without_face']} |"
        )
    acc = doc.get("accuracy", {})
    if "ours" in acc:
        out += [
            "",
            f"(c) LFW View 1: {acc['train_pairs']} DevTrain pairs (threshold), "
            f"{acc['test_pairs']} DevTest pairs (accuracy); {acc['pairs_per_kind']} of each "
            "kind per file, spread evenly:",
            "",
            "| pipeline | threshold (DevTrain) | DevTest accuracy | std over 10 subsets "
            "| accuracy at 0.6 | images without a face | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("ours", "face_recognition"):
            a = acc[name]
            out.append(
                f"| {name} | {a['threshold']:.3f} | {100 * a['test_accuracy']:.1f}% "
                f"| {100 * a['test_accuracy_subsets_std']:.1f}% "
                f"| {100 * a['test_accuracy_at_0_6']:.1f}% | {a['images_without_face']} "
                f"| {a['seconds']:.0f} |"
            )
    return out


def identify(doc: dict[str, Any]) -> list[str]:
    out = [
        f"Load average at the end: {_load(doc)}; numpy {doc['environment']['numpy']}.",
        "",
        "| templates | people | gallery MB | 1 probe ms (median) | p95 ms "
        f"| batch of {doc['results'][0]['batch']} ms | ms per probe in batch "
        "| peak extra MB (batch) | oracle |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        ok = f"{r['checked_probes'] - r['reference_mismatches']}/{r['checked_probes']}"
        out.append(
            f"| {r['templates']:,} | {r['people']:,} | {r['gallery_mb']:.1f} "
            f"| {r['single_ms_median']:.3f} | {r['single_ms_p95']:.3f} "
            f"| {r['batch_ms_median']:.1f} | {r['batch_per_probe_ms']:.3f} "
            f"| {r['batch_peak_extra_mb']:.1f} | {ok} |"
        )
    return out


def e2e(doc: dict[str, Any]) -> list[str]:
    out = [f"`{doc['command']}`", ""]
    out += [
        "| configuration | offered/s | decided | decisions/s | p50 ms | p90 ms | p99 ms "
        "| max ms | lost | dup | wrong | timeout | mean batch | load avg before | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        for s in run.get("steps", []):
            lat = s["latency_ms"]
            load = s.get("load_average_before")
            load_text = f"{load[0]:.2f}" if load else "-"
            verdict = (
                "overload" if s.get("overload") else
                "pass" if s.get("passed") else "FAIL" if "passed" in s else "-"
            )
            out.append(
                f"| {run['config']['name']} | {s['offered_rate']:g} | {s['decisions']}/"
                f"{s['uploads_sent']} | {s['throughput']:.2f} | {_n(lat['p50'])} "
                f"| {_n(lat['p90'])} | {_n(lat['p99'])} | {_n(lat['max'])} | {s['lost']} "
                f"| {s['duplicated']} | {s['unexpected_decisions']} | {s.get('timeouts', '-')} "
                f"| {s['encoder_batches']['mean_size']:.1f} "
                f"| {load_text} | {verdict} |"
            )
    if any("max_sustained_rate" in r for r in doc["runs"]):
        out += ["", "| configuration | sustained uploads/s (p99 < 1 s, none lost) "
                "| capacity decisions/s |", "|---|---|---|"]
        for run in doc["runs"]:
            bound = " (lower bound)" if run.get("capacity_is_lower_bound") else ""
            out.append(f"| {run['config']['name']} | {_n(run.get('max_sustained_rate'), 2)} "
                       f"| {_n(run.get('capacity'), 2)}{bound} |")
    for run in doc["runs"]:
        steps = [s for s in run.get("steps", []) if s.get("passed")] or run.get("steps", [])
        if not steps:
            continue
        s = max(steps, key=lambda x: x["offered_rate"])
        out += ["", f"Stages at {s['offered_rate']:g} uploads/s ({run['config']['name']}; ms):",
                "", "| stage | p50 | p90 | p99 | mean |", "|---|---|---|---|---|"]
        for name, v in s["stages_ms"].items():
            out.append(f"| {name} | {_n(v['p50'], 1)} | {_n(v['p90'], 1)} | {_n(v['p99'], 1)} "
                       f"| {_n(v['mean'], 1)} |")
        out.append(f"| **upload -> verified event** | {_n(s['latency_ms']['p50'], 1)} "
                   f"| {_n(s['latency_ms']['p90'], 1)} | {_n(s['latency_ms']['p99'], 1)} "
                   f"| {_n(s['latency_ms']['mean'], 1)} |")
    return out


def main(argv: list[str] | None = None) -> int:
    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        paths = sorted((ROOT / "bench" / "results").glob("*.json"))
    for path in paths:
        doc = json.loads(path.read_text())
        kind = doc.get("benchmark") or ("encoder_chips" if "chips" in doc else "?")
        render = {"encoder_chips": encoder, "identify": identify, "e2e_load": e2e}.get(kind)
        if render is None:
            continue
        print(f"### {path.name}\n")
        print("\n".join(render(doc)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
