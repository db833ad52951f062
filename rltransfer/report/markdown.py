"""The report.md renderer: an experiment's results as a Markdown page.

:func:`render_markdown` lays out what was run (pair, algorithm, budget, the methods and what
each starts from), the metrics table with CIs, the differences from the baseline and the
verdicts with the rule that gives them, the runs (failed ones with their traceback excerpt),
notes, wall time, the experiment's config and the package versions. Every number comes from
the metrics.json document, so report.md and metrics.json always agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from rltransfer import envs
from rltransfer import metrics as mt
from rltransfer.report.prediction import step_count, verdict_lines
from rltransfer.report.results import Results
from rltransfer.report.tables import (
    fmt_ci,
    fmt_duration,
    fmt_number,
    fmt_signed,
    fmt_speedup,
    fmt_ttt,
)


def ci_words(m: Mapping[str, Any]) -> str:
    """How the report's intervals were made, in words."""
    if (m.get("ci") or {}).get("interval") == "yuen":
        return ("differences from the baseline: Yuen's trimmed t with Hsu's conservative "
                "degrees of freedom; one method's IQM, the speed-up, the transfer ratio and "
                f"P(improvement): stratified percentile bootstrap, {m['ci']['reps']} "
                f"resamples, seed {m['ci']['seed']}; coverage measured in docs/metrics.md")
    return f"stratified bootstrap, {m['ci']['reps']} resamples, seed {m['ci']['seed']}"


def family_words(m: Mapping[str, Any], base: str) -> str:
    """The family-wise rule and the family it adjusts over, in words ("" without one)."""
    fam = m.get("family") or {}
    if not fam.get("rule"):
        return ""
    names = ", ".join(fam["methods"])
    return (f"*Family-wise*: the same verdicts after Holm's procedure over the family of all "
            f"{fam['size']} methods against {base} ({names}), with Yuen's trimmed t test of "
            f"the AUC difference, so that the chance of calling any method positive or "
            f"negative when none differs from {base} is at most {fam['alpha']:.0%} "
            "(measured in docs/metrics.md).")


def _verdict_line(label: str, e: Mapping[str, Any], base: str, level: float) -> str:
    v = e.get("verdict", "inconclusive")
    d = e.get("difference", {}).get(mt.PRIMARY_METRIC, {})
    pct = f"{level:.0%}"
    if v in ("positive", "negative"):
        direction = "higher" if v == "positive" else "lower"
        text = (
            f"**{label}: {v} transfer.** Its AUC (mean return over training) is {direction} "
            f"than {base}'s: difference {fmt_signed(d)}, the {pct} CI lies entirely "
            f"{'above' if v == 'positive' else 'below'} 0."
        )
    elif d.get("low") is None:
        text = f"**{label}: inconclusive.** Too few seeds for a confidence interval."
    else:
        diff = fmt_signed(d)
        text = f"**{label}: inconclusive.** AUC difference {diff}: the {pct} CI contains 0."
    if e.get("n_seeds", 0) < mt.MIN_SEEDS_FOR_VERDICT and v == "inconclusive":
        text += f" (Fewer than {mt.MIN_SEEDS_FOR_VERDICT} seeds: inconclusive by rule.)"
    holm = e.get("verdict_holm")
    if holm is not None and holm != v:
        text += f" Family-wise (Holm): {holm}."
    poi = e.get("probability_of_improvement")
    if poi and poi.get("value") is not None:
        text += f" P(improvement over {base}) = {fmt_ci(poi, 'value')}."
    return "- " + text


def _config_block(config: Any) -> str:
    try:
        return "```yaml\n" + yaml.safe_dump(config, sort_keys=False).rstrip() + "\n```"
    except Exception:  # noqa: BLE001 - fall back to JSON for anything YAML cannot dump
        return "```json\n" + json.dumps(config, indent=2, default=str) + "\n```"


def published_text(cfg: Mapping[str, Any], final_return: float) -> str:
    """The published score a source agent's final return is held to, in words ("" when its
    env's family publishes none for its algorithm, or the source ran on a modified member or
    on pixels, where the published score does not apply)."""
    env = cfg.get("env") or {}
    algo = str(cfg.get("algo", ""))
    if env.get("pixels") or cfg.get("kind") != "pretrain":
        return ""
    try:
        fam = envs.get_family(str(env.get("env")))
        if fam.resolve(env.get("knobs") or {}) != fam.defaults():
            return ""
    except envs.EnvError:
        return ""
    pub = fam.published.get(algo)
    if pub is None:
        return ""
    share = final_return / pub.score if pub.score > 0 else float("nan")
    budget = "" if int(cfg.get("steps") or 0) == pub.steps else " (another budget)"
    far = ", **far below it**: transfer from this source says little" if share < 0.5 else ""
    return (f" ({share:.0%} of the published {algo.upper()} score on {pub.env} at "
            f"{pub.steps:,} steps{budget}, {fmt_number(pub.score)}{far})")


def describe_source(cfg: Mapping[str, Any], done: Mapping[str, Any], *,
                    target_pixels: bool = False) -> str:
    """What a source run is, in words, from its config.json and done.json: the agent's env,
    budget and final return beside the published score, or the encoder's objective, frames
    and loss (flagged when it collapsed)."""
    env = cfg.get("env") or {}
    where = f"`{env.get('env')}`" + (f" {json.dumps(env['knobs'])}" if env.get("knobs") else "")
    if env.get("pixels"):
        where += f" from its pixel view {json.dumps(env['pixels'], sort_keys=True)}"
    if target_pixels and not env.get("pixels") and cfg.get("kind") == "pretrain":
        where += " from its state (a state teacher: the student sees pixels)"
    if cfg.get("kind") == "pretrain-encoder":
        o = cfg.get("method_spec") or {}
        first, final = done.get("first_loss"), done.get("final_loss")
        loss = f"; loss {fmt_number(first)} → {fmt_number(final)}" if final is not None else ""
        if mt.encoder_collapsed(o.get("objective"), final, o.get("batch_size")):
            loss += (f" (**collapsed**: chance is ln {o.get('batch_size')} = "
                     f"{fmt_number(math.log(o['batch_size']))}; its features do not tell "
                     "frames apart)")
        return (
            f"{o.get('objective')} encoder `{o.get('encoder')}` trained on "
            f"{o.get('frames'):,} random-policy frames of {where}, "
            f"{o.get('steps'):,} gradient steps{loss}"
        )
    ret = (
        f"; final return {fmt_number(done.get('final_return'))}"
        + published_text(cfg, done["final_return"])
        if done.get("final_return") is not None
        else ""
    )
    return (
        f"{str(cfg.get('algo', '')).upper()} agent trained on {where} for "
        f"{cfg.get('steps'):,} steps{ret}"
    )


def _methods_section(res: Results) -> list[str]:
    """What each method starts from (source run, encoder), from the runs' config.json."""
    first: dict[str, dict[str, Any]] = {}
    source_ids: dict[str, set[str]] = {}
    sources: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for r in res.runs:
        cfg = res.run_configs.get(r.run_id)
        if cfg is None:
            continue
        if r.kind == "transfer":
            first.setdefault(r.method, cfg)
            if cfg.get("source_id"):
                source_ids.setdefault(r.method, set()).add(str(cfg["source_id"]))
        else:
            sources[r.run_id] = (cfg, res.run_done.get(r.run_id, {}))
    if not first:
        return []
    target_pixels = bool(((res.experiment.get("config") or {}).get("target") or {}).get("pixels"))

    def encoder(cfg: Mapping[str, Any]) -> str:
        pk = (cfg.get("preset") or {}).get("policy_kwargs") or {}
        name = pk.get("features_extractor")
        if not name:
            return "—"
        kw = pk.get("features_extractor_kwargs") or {}
        return f"`{name}`" + (f" {json.dumps(kw, sort_keys=True)}" if kw else "")

    order = [m for m in res.experiment.get("methods") or [] if m in first]
    lines = ["## Methods", "", "| method | spec | starts from | encoder |", "|---|---|---|---|"]
    for label in [*order, *sorted(set(first) - set(order))]:
        cfg = first[label]
        sid = cfg.get("source_id")
        start = (
            f"run `{sid}`: {describe_source(*sources[sid], target_pixels=target_pixels)}"
            if sid in sources
            else (f"run `{sid}`" if sid else "its own initialization")
        )
        if len(source_ids.get(label, ())) > 1:
            start = _many_sources(sorted(source_ids[label]), sources)
        spec = json.dumps(cfg.get("method_spec"), sort_keys=True)
        lines.append(f"| {label} | `{spec}` | {start} | {encoder(cfg)} |")
    return lines + [""]


def _many_sources(ids: list[str], sources: Mapping[str, tuple[dict[str, Any],
                                                               dict[str, Any]]]) -> str:
    """A method whose seeds start from sources of their own: how many, and their returns."""
    known = [sources[i] for i in ids if i in sources]
    cfg = known[0][0] if known else {}
    rets = [float(d["final_return"]) for _, d in known if d.get("final_return") is not None]
    seeds = sorted(int(c.get("seed", 0)) for c, _ in known)
    text = (f"**{len(ids)} source runs**, one per transfer seed or group of seeds (source seeds "
            f"{', '.join(map(str, seeds))}): {describe_source(cfg, {}) if cfg else '?'}")
    if rets:
        text += (f"; final returns {fmt_number(min(rets))} to {fmt_number(max(rets))} "
                 f"(IQM {fmt_number(mt.iqm(np.array(rets)))})")
    return text


def _dip_lines(m: Mapping[str, Any]) -> list[str]:
    """A table of how far each method's IQM curve falls below its start after step 0."""
    rows = []
    for label, e in m["methods"].items():
        d = e.get("dip")
        if not d or d.get("lowest") is None:
            continue
        frac = d.get("fraction")
        rows.append(
            f"| {label} | {fmt_number(d['jumpstart'])} | {fmt_number(d['lowest'])} "
            f"| {fmt_number(d['step'])} | {'—' if frac is None else f'{frac:.2f}'} |"
        )
    if not rows:
        return []
    return [
        "Lowest point of each IQM curve after step 0 (a transferred agent that collapses "
        "before it relearns has a small fraction of its jumpstart left):",
        "",
        "| method | IQM jumpstart | lowest IQM after step 0 | at step | lowest ÷ jumpstart |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _velocity_lines(res: Results) -> list[str]:
    """Forward velocity at step 0 and at the last evaluation, per method (IQM over seeds),
    and the sources': for locomotion, so that standing still cannot pass for learning."""
    per: dict[str, list[tuple[float, float]]] = {}
    sources = []
    for r in res.runs:
        c = res.run_curves.get(r.run_id)
        if c is None or c.forward_velocity is None or not c.forward_velocity.size:
            continue
        if r.kind == "transfer" and r.status == "done":
            per.setdefault(r.method, []).append((float(c.forward_velocity[0]),
                                                 float(c.forward_velocity[-1])))
        elif r.kind == "pretrain" and r.status == "done":
            sources.append(f"{r.method} {fmt_number(float(c.forward_velocity[-1]))}")
    if not per:
        return []
    order = [m for m in res.experiment.get("methods") or [] if m in per]
    rows = []
    for label in [*order, *sorted(set(per) - set(order))]:
        start, final = (np.array(v) for v in zip(*per[label], strict=True))
        rows.append(f"| {label} | {fmt_number(mt.iqm(start))} | {fmt_number(mt.iqm(final))} "
                    f"| {len(final)} |")
    return [
        "Forward velocity (the mean of the env's `x_velocity` over each evaluation episode, "
        "IQM over seeds; a policy that stands still scores about 0 whatever its return)"
        + (f"; the source at its last evaluation: {', '.join(sources)}" if sources else "")
        + ":",
        "",
        "| method | at step 0 | at the last evaluation | seeds |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def _prediction_lines(prediction: Mapping[str, Any] | None) -> list[str]:
    """The section on whether the probes of ``rltransfer rank`` predict the real gains."""
    if prediction is None:
        return []
    lines = ["## Does a probe predict?", ""]
    if "error" in prediction:
        return lines + [f"[rank.md](rank.md) could not be rebuilt: {prediction['error']}", ""]
    ps = prediction["probe_settings"]
    return lines + [
        f"Probes of `rltransfer rank --experiment` (budget {step_count(ps.get('budget'))} "
        f"target steps per candidate, seed {ps.get('seed')}) against each candidate source's "
        "real AUC gain over scratch: Spearman ρ with its bootstrap CI over seeds, the regret "
        "of the top pick and the cost, judged against issue #15's goal. Tables and "
        "definitions: [rank.md](rank.md).",
        "",
        *verdict_lines(prediction),
        "",
    ]


def render_markdown(res: Results, doc: Mapping[str, Any],
                    prediction: Mapping[str, Any] | None = None) -> str:
    """report.md: facts, methods, results with verdicts, runs, notes, wall time, config, versions.

    Args:
        res: the loaded results (run statuses, configs, experiment.json).
        doc: the metrics.json document :func:`rltransfer.report.build_report` writes (its
            ``metrics`` is None when no transfer run has finished).
        prediction: the rank.json document (:mod:`rltransfer.report.prediction`), or
            ``{"error": ...}``, for a section on whether the probes predict the gains.
    """
    exp = res.experiment
    m = doc["metrics"]
    lines: list[str] = [f"# Transfer report: {exp.get('name', res.out_dir.name)}", ""]
    ev = exp.get("eval") or {}
    facts = [
        f"pair `{exp.get('pair', '?')}`",
        f"algorithm `{exp.get('algo', '?')}`",
        f"budget {fmt_number(exp.get('steps'))} steps" if exp.get("steps") is not None else None,
        (
            f"evaluation every {fmt_number(ev.get('every'))} steps, {ev.get('episodes')} episodes"
            if ev
            else None
        ),
        f"seeds {exp.get('seeds')}" if exp.get("seeds") is not None else None,
        f"threshold {fmt_number(exp.get('threshold'))}"
        if exp.get("threshold") is not None
        else None,
    ]
    lines += ["; ".join(f for f in facts if f) + ".", ""]
    lines += _methods_section(res)

    lines += ["## Results", ""]
    if m is None:
        lines += ["No finished transfer runs yet: no metrics.", ""]
    else:
        base = m["baseline"]
        level = m["ci"]["level"]
        lines += [
            f"Interquartile mean (IQM) over seeds with {level:.0%} CI ({ci_words(m)}); AUC is "
            "the mean return over training"
            + (
                "; time to threshold is the first evaluation step from which the return stays "
                f"at or above {fmt_number(m['threshold'])} for k = {m['sustain']} evaluations in a "
                f"row, censored at {fmt_number(m['budget'])} steps when there is none; speed-up is "
                f"{base}'s time to threshold ÷ the method's (higher is better; a time of 0 "
                "counts as one evaluation interval)"
                if m.get("threshold") is not None
                else ""
            )
            + ". Definitions: README, section Metrics.",
            "",
            "| method | seeds | jumpstart | final return | AUC | time to threshold "
            "| speed-up | transfer ratio | P(improvement) | verdict | verdict, family-wise |",
            "|---|---:|---|---|---|---|---|---|---|---|---|",
        ]
        for label, e in m["methods"].items():
            is_base = label == base
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"**{label}**" if is_base else label,
                        str(e["n_seeds"]),
                        fmt_ci(e["metrics"]["jumpstart"]),
                        fmt_ci(e["metrics"]["final_return"]),
                        fmt_ci(e["metrics"]["auc"]),
                        fmt_ttt(e),
                        "—" if is_base else fmt_speedup(e.get("time_to_threshold_speedup")),
                        "—" if is_base else fmt_ci(e.get("transfer_ratio"), "value"),
                        "—" if is_base else fmt_ci(e.get("probability_of_improvement"), "value"),
                        "baseline" if is_base else e.get("verdict", "n/a"),
                        "—" if is_base else (e.get("verdict_holm") or "n/a"),
                    ]
                )
                + " |"
            )
        others = [(k, e) for k, e in m["methods"].items() if k != base and "difference" in e]
        if others:
            lines += [
                "",
                f"### Difference from {base} (method − {base}, IQM difference and {level:.0%} CI)",
                "",
                "| method | Δ jumpstart | Δ final return | Δ AUC | Δ time to threshold |",
                "|---|---|---|---|---|",
            ]
            for label, e in others:
                d = e["difference"]
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            label,
                            fmt_signed(d.get("jumpstart")),
                            fmt_signed(d.get("final_return")),
                            fmt_signed(d.get("auc")),
                            fmt_signed(d.get("time_to_threshold")),
                        ]
                    )
                    + " |"
                )
            lines += ["", "## Verdicts", ""]
            lines += [_verdict_line(k, e, base, level) for k, e in others]
            lines += [
                "",
                f"Rule: a method is *positive* when the {level:.0%} CI of its AUC minus "
                f"{base}'s AUC lies entirely above 0, *negative* when it lies entirely below 0, "
                f"and *inconclusive* otherwise or with fewer than {mt.MIN_SEEDS_FOR_VERDICT} "
                "seeds. " + family_words(m, base) + " The transfer ratio is (AUC − r_ref) / "
                f"(AUC of {base} − r_ref) with r_ref = {fmt_number(m['reference_return'])}, "
                "the lowest evaluation return of any run.",
            ]
        lines += ["", "## Curves", "", "![IQM learning curves](curves.png)", ""]
        lines += _dip_lines(m)
        lines += _velocity_lines(res)
    lines += _prediction_lines(prediction)

    lines += ["## Runs", ""]
    counts = {s: sum(r.status == s for r in res.runs) for s in ("done", "failed", "unfinished")}
    lines += [
        f"{len(res.runs)} runs: {counts['done']} finished, {counts['failed']} failed, "
        f"{counts['unfinished']} unfinished.",
        "",
    ]
    if res.failed:
        lines += ["### Failed runs", ""]
        for r in res.failed:
            lines += [
                f"- `{r.run_id}` ({r.kind}, {r.method}, seed {r.seed}):",
                "",
                "  ```text",
                *[f"  {ln}" for ln in (r.error or "").splitlines()],
                "  ```",
            ]
        lines.append("")
    if res.unfinished:
        lines += ["### Unfinished runs", ""]
        lines += [
            f"- `{r.run_id}` ({r.kind}, {r.method}, seed {r.seed}), {r.n_evals} evaluations"
            for r in res.unfinished
        ]
        lines.append("")
    notes = [*doc["notes"], *(m["notes"] if m else [])]
    if m:
        notes += [f"{k}: {n}" for k, e in m["methods"].items() for n in e.get("notes", [])]
    if notes:
        lines += ["### Notes", "", *[f"- {n}" for n in notes], ""]

    wt = doc["wall_time"]
    lines += [
        "## Wall time",
        "",
        f"Total {fmt_duration(wt['total'])} of run time (summed over runs; runs may have "
        f"run in parallel), of which pretraining {fmt_duration(wt['pretrain'])}.",
        "",
        "| method | wall time |",
        "|---|---:|",
        *[f"| {k} | {fmt_duration(v)} |" for k, v in wt["per_method"].items()],
        "",
        "## Config",
        "",
        _config_block(exp.get("config", {})),
        "",
        "## Versions",
        "",
        "| package | version |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in (exp.get("versions") or {}).items()],
        "",
    ]
    return "\n".join(lines)
